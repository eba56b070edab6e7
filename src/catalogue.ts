/**
 * The full error catalogue: every domain's codes in one table. The CLI maps codes to exit
 * statuses and services to HTTP statuses through it; docs/errors.md is generated from it.
 * Each domain adds exactly one line below when it declares its codes.
 */
import { CoreErrors, type ErrorCatalogue, type ErrorSpec } from "./core/errors.js";
import { CliErrors } from "./cli/args.js";

export const domains: readonly { readonly name: string; readonly codes: ErrorCatalogue }[] = [
  { name: "core", codes: CoreErrors },
  { name: "cli", codes: CliErrors },
];

export const catalogue: ReadonlyMap<string, ErrorSpec> = new Map(
  domains.flatMap((d) => Object.entries(d.codes)),
);

export function specFor(code: string): ErrorSpec | undefined {
  return catalogue.get(code);
}

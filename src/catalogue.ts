/**
 * The full error catalogue: every domain's codes in one table. The CLI maps codes to exit
 * statuses through it and docs/errors.md is generated from it; the HGS server uses the part
 * without host and CLI codes (catalogue-libraries.ts). Each domain adds exactly one line, here
 * or there, when it declares its codes.
 */
import { CoreErrors, type ErrorSpec } from "./core/errors.js";
import { CliErrors } from "./cli/errors.js";
import { GuardianStoreErrors, HostErrors } from "./host/errors.js";
import { VmErrors } from "./host/vm/errors.js";
import { HostGuardErrors } from "./host/guarded/errors.js";
import { libraryDomains, type ErrorDomain } from "./catalogue-libraries.js";

export const domains: readonly ErrorDomain[] = [
  { name: "core", codes: CoreErrors },
  { name: "cli", codes: CliErrors },
  { name: "host", codes: HostErrors },
  { name: "vm", codes: VmErrors },
  { name: "guardian store", codes: GuardianStoreErrors },
  ...libraryDomains,
  { name: "guarded host", codes: HostGuardErrors },
];

export const catalogue: ReadonlyMap<string, ErrorSpec> = new Map(
  domains.flatMap((d) => Object.entries(d.codes)),
);

export function specFor(code: string): ErrorSpec | undefined {
  return catalogue.get(code);
}

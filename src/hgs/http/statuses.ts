/**
 * HTTP statuses of error codes, from the error catalogue. The server takes the part of the
 * catalogue that code running in an HGS process can raise (core and the libraries), so it never
 * imports the host or the CLI; a code outside it is an internal error (500).
 */
import { CoreErrors, type ErrorSpec } from "../../core/errors.js";
import { libraryDomains } from "../../catalogue-libraries.js";

const table: ReadonlyMap<string, ErrorSpec> = new Map(
  [CoreErrors, ...libraryDomains.map((d) => d.codes)].flatMap((codes) => Object.entries(codes)),
);

export function httpStatusOf(code: string): number {
  return table.get(code)?.http ?? CoreErrors.CORE_ERR_INTERNAL.http;
}

/** Every status an error answer can have, for the routes' response schemas and OpenAPI. */
export const errorStatuses: readonly number[] = [...new Set([...table.values()].map((s) => s.http))].sort(
  (a, b) => a - b,
);

/**
 * The full error catalogue: every domain's codes in one table. The CLI maps codes to exit
 * statuses and services to HTTP statuses through it; docs/errors.md is generated from it.
 * Each domain adds exactly one line below when it declares its codes.
 */
import { CoreErrors, type ErrorCatalogue, type ErrorSpec } from "./core/errors.js";
import { CliErrors } from "./cli/args.js";
import { GuardianStoreErrors, HostErrors } from "./host/errors.js";
import { VmErrors } from "./host/vm/errors.js";
import { Asn1Errors } from "./asn1/errors.js";
import { UefiPeErrors } from "./uefi/errors-pe.js";
import { UefiErrors } from "./uefi/errors.js";
import { ProtectorErrors } from "./protector/errors.js";
import { EventlogErrors } from "./eventlog/errors.js";
import { TpmErrors } from "./tpm/errors.js";
import { HgsErrors } from "./attest/errors.js";
import { HostGuardErrors } from "./host/guarded/errors.js";

export const domains: readonly { readonly name: string; readonly codes: ErrorCatalogue }[] = [
  { name: "core", codes: CoreErrors },
  { name: "cli", codes: CliErrors },
  { name: "host", codes: HostErrors },
  { name: "vm", codes: VmErrors },
  { name: "guardian store", codes: GuardianStoreErrors },
  { name: "asn1", codes: Asn1Errors },
  { name: "uefi (PE/Authenticode)", codes: UefiPeErrors },
  { name: "uefi (variables, stores, templates)", codes: UefiErrors },
  { name: "protector", codes: ProtectorErrors },
  { name: "eventlog", codes: EventlogErrors },
  { name: "tpm", codes: TpmErrors },
  { name: "hgs", codes: HgsErrors },
  { name: "guarded host", codes: HostGuardErrors },
];

export const catalogue: ReadonlyMap<string, ErrorSpec> = new Map(
  domains.flatMap((d) => Object.entries(d.codes)),
);

export function specFor(code: string): ErrorSpec | undefined {
  return catalogue.get(code);
}

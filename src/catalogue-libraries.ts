/**
 * The error codes of the pure libraries (asn1 … attest): every code that can surface in a process
 * that runs only library code plus its own adapters. The HGS server maps codes to HTTP statuses
 * from this table (with core's), so it never imports the host or the CLI; src/catalogue.ts adds
 * the host's and the CLI's codes for the full catalogue. ASN.1 and UEFI codes are listed because
 * protector and eventlog raise them, not because HGS imports those parts itself.
 */
import type { ErrorCatalogue } from "./core/errors.js";
import { Asn1Errors } from "./asn1/errors.js";
import { UefiPeErrors } from "./uefi/errors-pe.js";
import { UefiErrors } from "./uefi/errors.js";
import { ProtectorErrors } from "./protector/errors.js";
import { EventlogErrors } from "./eventlog/errors.js";
import { TpmErrors } from "./tpm/errors.js";
import { HgsErrors } from "./attest/errors.js";

export interface ErrorDomain {
  readonly name: string;
  readonly codes: ErrorCatalogue;
}

export const libraryDomains: readonly ErrorDomain[] = [
  { name: "asn1", codes: Asn1Errors },
  { name: "uefi (PE/Authenticode)", codes: UefiPeErrors },
  { name: "uefi (variables, stores, templates)", codes: UefiErrors },
  { name: "protector", codes: ProtectorErrors },
  { name: "eventlog", codes: EventlogErrors },
  { name: "tpm", codes: TpmErrors },
  { name: "hgs", codes: HgsErrors },
];

/**
 * UEFI error codes (STYLE.md habit 6): signature lists, authenticated variables, OVMF variable
 * stores, Secure Boot templates and keys. Every failure raised by the UEFI variable code is a
 * {@link UefiError} carrying one of these codes; decoding failures also carry offset and path.
 * (PE/Authenticode codes live in errors-pe.ts.)
 */
import { defineErrors, errorFactory, errorGuard, Exit, type BulwarkError } from "../core/errors.js";

export const UefiErrors = defineErrors("UEFI", {
  UEFI_ERR_SIGLIST_INVALID: {
    summary:
      "An EFI_SIGNATURE_LIST is malformed (sizes inconsistent, truncated, or a known entry type with the wrong size).",
    exit: Exit.invalidInput,
    http: 400,
  },
  UEFI_ERR_VARIABLE_INVALID: {
    summary: "A UEFI variable name, GUID, attribute set or EFI_TIME value is not valid.",
    exit: Exit.invalidInput,
    http: 400,
  },
  UEFI_ERR_AUTH_INVALID: {
    summary:
      "An EFI_VARIABLE_AUTHENTICATION_2 header is malformed (WIN_CERTIFICATE length, revision or type).",
    exit: Exit.invalidInput,
    http: 400,
  },
  UEFI_ERR_AUTH_REFUSED: {
    summary:
      "A signed variable update does not verify against the keys allowed to change that variable (PK for PK/KEK, PK or KEK for db/dbx).",
    exit: Exit.refused,
    http: 403,
  },
  UEFI_ERR_VARSTORE_INVALID: {
    summary:
      "The file is not an edk2/OVMF variable store, or its firmware volume, variable store or fault-tolerant-write headers are corrupt.",
    exit: Exit.invalidInput,
    http: 400,
  },
  UEFI_ERR_VARSTORE_FULL: {
    summary:
      "The variables do not fit in the variable store; nothing was written (use a larger (_4M) store or fewer entries).",
    exit: Exit.conflict,
    http: 409,
  },
  UEFI_ERR_VARSTORE_FTW_PENDING: {
    summary:
      "The variable store has an unfinished fault-tolerant write; boot the VM once so the firmware completes it, then retry.",
    exit: Exit.conflict,
    http: 409,
  },
  UEFI_ERR_VARIABLE_NOT_FOUND: {
    summary: "The requested UEFI variable is not in the store.",
    exit: Exit.notFound,
    http: 404,
  },
  UEFI_ERR_TEMPLATE_NOT_FOUND: {
    summary: "No Secure Boot template has that name or ID; `bulwark secureboot template list` shows them.",
    exit: Exit.notFound,
    http: 404,
  },
  UEFI_ERR_TEMPLATE_INVALID: {
    summary:
      "A Secure Boot template or import source (PEM/DER certificate, ESL, hash list, Azure `securityProfile.uefiSettings` JSON) is not valid, including the former invented `uefiSettings.signatures` shape.",
    exit: Exit.invalidInput,
    http: 400,
  },
  UEFI_ERR_TEMPLATE_EXISTS: {
    summary: "A Secure Boot template with that name or ID already exists.",
    exit: Exit.conflict,
    http: 409,
  },
  UEFI_ERR_MS_CERTS_MISSING: {
    summary:
      "The Microsoft Secure Boot certificates have not been extracted yet; run the setup step (npm run bootstrap) with Debian's ovmf package installed.",
    exit: Exit.missingDependency,
    http: 503,
  },
  UEFI_ERR_KEYS_MISSING: {
    summary:
      "This installation's Secure Boot platform key has not been created; run `bulwark secureboot keys create`.",
    exit: Exit.notFound,
    http: 503,
  },
  UEFI_ERR_KEYS_EXIST: {
    summary: "Secure Boot keys already exist in that directory; refusing to overwrite them.",
    exit: Exit.conflict,
    http: 409,
  },
  UEFI_ERR_IO: {
    summary: "Reading or writing a Secure Boot file failed (see the message for the path).",
    exit: Exit.io,
    http: 500,
  },
});
export type UefiErrorCode = keyof typeof UefiErrors;

/** Raises this domain's errors: `throw uefiError("...", "sentence", details)`. */
export const uefiError = errorFactory(UefiErrors, "UefiError");
/** True for an error carrying one of this domain's codes. */
export const isUefiError = errorGuard(UefiErrors);
export type UefiError = BulwarkError<UefiErrorCode>;

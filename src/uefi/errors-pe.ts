/**
 * UEFI PE/COFF, Authenticode and PKCS #7 error codes (STYLE.md habit 6). The rest of the UEFI
 * catalogue (signature lists, variables, varstores, templates) is in errors.ts.
 */
import { defineErrors, errorFactory, Exit, isBulwarkError, type BulwarkError } from "../core/errors.js";

export const UefiPeErrors = defineErrors("UEFI", {
  UEFI_ERR_PE_INVALID: {
    summary:
      "The file is not a valid PE/COFF image (DOS or PE signature, COFF or optional header, section table or data directories out of bounds).",
    exit: Exit.invalidInput,
    http: 400,
  },
  UEFI_ERR_PE_CERT_TABLE: {
    summary:
      "The PE attribute certificate table (security directory) is malformed: not at the end of the file, misaligned, or a WIN_CERTIFICATE length is wrong.",
    exit: Exit.invalidInput,
    http: 400,
  },
  UEFI_ERR_AUTHENTICODE_INVALID: {
    summary:
      "An Authenticode signature is malformed (not PKCS #7 SignedData with SpcIndirectDataContent, or an unsupported digest).",
    exit: Exit.invalidInput,
    http: 400,
  },
  UEFI_ERR_AUTHENTICODE_REFUSED: {
    summary:
      "Secure Boot would refuse this image: no valid signature chains to db and its hash is not in db, or dbx revokes its hash or a certificate in its chain.",
    exit: Exit.refused,
    http: 403,
  },
  UEFI_ERR_PE_SIGNING_KEY: {
    summary:
      "The signing key cannot be used: not an unencrypted PEM/DER private key, or not the key of the signing certificate.",
    exit: Exit.invalidInput,
    http: 400,
  },
  UEFI_ERR_PKCS7_INVALID: {
    summary:
      "A PKCS #7 SignedData for a UEFI authenticated variable is malformed or not as UEFI 2.10 section 8.2.2 requires.",
    exit: Exit.invalidInput,
    http: 400,
  },
  UEFI_ERR_PKCS7_UNSUPPORTED_KEY: {
    summary:
      "UEFI authenticated variables must be signed with an RSA key (RSASSA-PKCS1-v1_5, SHA-256; UEFI 2.10 section 8.2.2).",
    exit: Exit.invalidInput,
    http: 400,
  },
});
export type UefiPeErrorCode = keyof typeof UefiPeErrors;

export const uefiPeError = errorFactory(UefiPeErrors, "UefiPeError");

/** True for an error raised with one of the {@link UefiPeErrors} codes. */
export function isUefiPeError(e: unknown): e is BulwarkError<UefiPeErrorCode> {
  return isBulwarkError(e) && Object.hasOwn(UefiPeErrors, e.code);
}

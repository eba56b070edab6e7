/**
 * ASN.1 / DER, X.509 and CMS error codes (STYLE.md habit 6). Every failure raised by src/asn1
 * is made by {@link asn1Error} with one of these codes and, where a parser failed, the byte
 * offset and a structure path. Failures inside @peculiar's schema packages are translated to
 * these codes at the one place we call them (schema.ts), never let through as plain Errors.
 */
import { defineErrors, errorFactory, Exit, isBulwarkError, type BulwarkError } from "../core/errors.js";

export const Asn1Errors = defineErrors("ASN1", {
  ASN1_ERR_TRUNCATED: {
    summary: "DER input ended before a tag, length or value was complete.",
    exit: Exit.invalidInput,
    http: 400,
  },
  ASN1_ERR_INDEFINITE_LENGTH: {
    summary: "DER input uses an indefinite length (BER), which DER forbids.",
    exit: Exit.invalidInput,
    http: 400,
  },
  ASN1_ERR_NON_MINIMAL: {
    summary: "DER input encodes a tag, length or integer in more bytes than needed (not DER).",
    exit: Exit.invalidInput,
    http: 400,
  },
  ASN1_ERR_LIMIT: {
    summary: "DER input exceeds a nesting depth, length or element-count limit.",
    exit: Exit.invalidInput,
    http: 400,
  },
  ASN1_ERR_TRAILING: {
    summary: "DER input has bytes left over after the outermost element.",
    exit: Exit.invalidInput,
    http: 400,
  },
  ASN1_ERR_UNEXPECTED_TAG: {
    summary: "A DER element has a different tag than the structure requires.",
    exit: Exit.invalidInput,
    http: 400,
  },
  ASN1_ERR_INVALID_VALUE: {
    summary: "A DER element's value is malformed (integer, OID, time, string or bit string).",
    exit: Exit.invalidInput,
    http: 400,
  },
  ASN1_ERR_UNSUPPORTED_ALGORITHM: {
    summary:
      "A key, digest or signature algorithm is not supported (supported: RSA PKCS#1 v1.5, ECDSA P-256/P-384, SHA-1/256/384/512).",
    exit: Exit.invalidInput,
    http: 400,
  },
  ASN1_ERR_INVALID_NAME: {
    summary: "A distinguished name string could not be parsed (expected e.g. 'CN=Example, O=Org').",
    exit: Exit.invalidInput,
    http: 400,
  },
  ASN1_ERR_INVALID_CERTIFICATE: {
    summary: "An X.509 certificate is malformed (RFC 5280 section 4.1).",
    exit: Exit.invalidInput,
    http: 400,
  },
  ASN1_ERR_INVALID_CMS: {
    summary: "A CMS/PKCS#7 SignedData structure is malformed (RFC 5652 section 5, RFC 2315 section 9).",
    exit: Exit.invalidInput,
    http: 400,
  },
  ASN1_ERR_KEY_MISMATCH: {
    summary:
      "A signing key does not belong to the certificate it is used with (issuer or signer certificate).",
    exit: Exit.invalidInput,
    http: 400,
  },
  ASN1_ERR_INVALID_PEM: {
    summary: "PEM input has no valid '-----BEGIN ...-----' block of the expected kind.",
    exit: Exit.invalidInput,
    http: 400,
  },
});
export type Asn1ErrorCode = keyof typeof Asn1Errors;

export const asn1Error = errorFactory(Asn1Errors, "Asn1Error");

/** True for an error raised with one of the {@link Asn1Errors} codes. */
export function isAsn1Error(e: unknown): e is BulwarkError<Asn1ErrorCode> {
  return isBulwarkError(e) && Object.hasOwn(Asn1Errors, e.code);
}

/**
 * Object identifiers used by Bulwark, by their specification names (greppable).
 * Sources: RFC 5280 (PKIX), RFC 8017 (PKCS #1), RFC 5758 / RFC 5480 (ECDSA, EC keys),
 * RFC 5652 (CMS), RFC 2985 (PKCS #9 attributes), NIST CSOR (hash algorithms), and
 * Microsoft "Windows Authenticode Portable Executable Signature Format" (SPC_* OIDs).
 */
export const OID = {
  // X.520 attribute types (RFC 5280 appendix A.1) and PKCS #9 emailAddress.
  commonName: "2.5.4.3",
  surname: "2.5.4.4",
  serialNumber: "2.5.4.5",
  countryName: "2.5.4.6",
  localityName: "2.5.4.7",
  stateOrProvinceName: "2.5.4.8",
  streetAddress: "2.5.4.9",
  organizationName: "2.5.4.10",
  organizationalUnitName: "2.5.4.11",
  title: "2.5.4.12",
  givenName: "2.5.4.42",
  domainComponent: "0.9.2342.19200300.100.1.25",
  emailAddress: "1.2.840.113549.1.9.1",

  // Certificate extensions (RFC 5280 4.2.1).
  subjectKeyIdentifier: "2.5.29.14",
  keyUsage: "2.5.29.15",
  subjectAltName: "2.5.29.17",
  basicConstraints: "2.5.29.19",
  extKeyUsage: "2.5.29.37",
  authorityKeyIdentifier: "2.5.29.35",

  // Extended key usages (RFC 5280 4.2.1.12) and the Microsoft/UEFI ones seen on Secure Boot keys.
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2",
  codeSigning: "1.3.6.1.5.5.7.3.3",
  emailProtection: "1.3.6.1.5.5.7.3.4",
  timeStamping: "1.3.6.1.5.5.7.3.8",
  /** Microsoft "Windows System Component Verification". */
  msWindowsSystemComponentVerification: "1.3.6.1.4.1.311.10.3.6",

  // Algorithms.
  rsaEncryption: "1.2.840.113549.1.1.1",
  sha1WithRSAEncryption: "1.2.840.113549.1.1.5",
  sha256WithRSAEncryption: "1.2.840.113549.1.1.11",
  sha384WithRSAEncryption: "1.2.840.113549.1.1.12",
  sha512WithRSAEncryption: "1.2.840.113549.1.1.13",
  rsassaPss: "1.2.840.113549.1.1.10",
  idEcPublicKey: "1.2.840.10045.2.1",
  prime256v1: "1.2.840.10045.3.1.7",
  secp384r1: "1.3.132.0.34",
  secp521r1: "1.3.132.0.35",
  ecdsaWithSHA1: "1.2.840.10045.4.1",
  ecdsaWithSHA256: "1.2.840.10045.4.3.2",
  ecdsaWithSHA384: "1.2.840.10045.4.3.3",
  ecdsaWithSHA512: "1.2.840.10045.4.3.4",
  sha1: "1.3.14.3.2.26",
  sha256: "2.16.840.1.101.3.4.2.1",
  sha384: "2.16.840.1.101.3.4.2.2",
  sha512: "2.16.840.1.101.3.4.2.3",

  // CMS content types (RFC 5652 section 4, 5.1) and attributes (RFC 5652 11, RFC 2985).
  data: "1.2.840.113549.1.7.1",
  signedData: "1.2.840.113549.1.7.2",
  contentType: "1.2.840.113549.1.9.3",
  messageDigest: "1.2.840.113549.1.9.4",
  signingTime: "1.2.840.113549.1.9.5",
  counterSignature: "1.2.840.113549.1.9.6",

  // Authenticode (Microsoft, "Windows Authenticode Portable Executable Signature Format" 1.0).
  SPC_INDIRECT_DATA_OBJID: "1.3.6.1.4.1.311.2.1.4",
  SPC_STATEMENT_TYPE_OBJID: "1.3.6.1.4.1.311.2.1.11",
  SPC_SP_OPUS_INFO_OBJID: "1.3.6.1.4.1.311.2.1.12",
  SPC_PE_IMAGE_DATAOBJ: "1.3.6.1.4.1.311.2.1.15",
  SPC_INDIVIDUAL_SP_KEY_PURPOSE_OBJID: "1.3.6.1.4.1.311.2.1.21",
  SPC_COMMERCIAL_SP_KEY_PURPOSE_OBJID: "1.3.6.1.4.1.311.2.1.22",
  SPC_NESTED_SIGNATURE_OBJID: "1.3.6.1.4.1.311.2.4.1",
  szOID_RFC3161_counterSign: "1.3.6.1.4.1.311.3.3.1",
} as const;

export type OidName = keyof typeof OID;

const byValue = new Map<string, OidName>(Object.entries(OID).map(([k, v]) => [v, k as OidName]));

/** The spec name of a dotted OID, or the dotted form when unknown. */
export function oidName(dotted: string): string {
  return byValue.get(dotted) ?? dotted;
}

/** Digest algorithm OIDs → node:crypto hash names. */
export const DIGEST_BY_OID: Readonly<Record<string, "sha1" | "sha256" | "sha384" | "sha512">> = {
  [OID.sha1]: "sha1",
  [OID.sha256]: "sha256",
  [OID.sha384]: "sha384",
  [OID.sha512]: "sha512",
};

export type HashName = "sha1" | "sha256" | "sha384" | "sha512";

export const OID_BY_DIGEST: Readonly<Record<HashName, string>> = {
  sha1: OID.sha1,
  sha256: OID.sha256,
  sha384: OID.sha384,
  sha512: OID.sha512,
};

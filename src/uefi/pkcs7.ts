/**
 * PKCS #7 for UEFI time-based authenticated variables (EFI_VARIABLE_AUTHENTICATION_2,
 * UEFI Specification 2.10 section 8.2.2 "Using the EFI_VARIABLE_AUTHENTICATION_2 descriptor").
 *
 * The spec's construction (8.2.2, steps 1-4), which {@link signDetachedForUefiVariable} follows:
 *   1. serialise VariableName (no NUL), VendorGuid, Attributes, TimeStamp, Data — the caller
 *      does this (uefi-varstore's variables.ts) and passes the bytes as `data`;
 *   2. sign them with RSASSA-PKCS1-v1_5 over SHA-256 (the only accepted scheme);
 *   3. build a DER PKCS #7 v1.5 SignedData: version 1, digestAlgorithms {SHA-256},
 *      contentInfo.contentType id-data with the content ABSENT (detached), certificates with at
 *      least the signer's, signerInfos: version 1, issuerAndSerialNumber, NO authenticated
 *      attributes, digestEncryptionAlgorithm RSA, encryptedDigest, NO unauthenticated attributes;
 *   4. AuthInfo.CertData = that DER SignedData. edk2's Pkcs7Verify accepts it with and without
 *      the outer ContentInfo (WrapPkcs7Data adds one when missing), but its VerifyTimeBasedPayload
 *      refuses the wrapped form for time-based variables (auth-variable.ts says why); sbvarsign,
 *      go-uefi and our default emit the bare SignedData.
 *
 * {@link verifyDetached} is edk2's Pkcs7Verify (CryptoPkg BaseCryptLib CryptPkcs7VerifyCommon.c):
 * OpenSSL's PKCS7_verify(p7, NULL, store{trusted}, data, NULL, PKCS7_BINARY) with partial chains
 * allowed, no time checks and any purpose. So it accepts either form; reads authenticatedAttributes
 * as OpenSSL does (cms.ts, rule "openssl-pkcs7": messageDigest checked, contentType not, signature
 * over OpenSSL's re-encoding) although section 8.2.2 step 3g says a signer has none; and needs
 * EVERY signer to verify over `data` and, when trusted certificates are given, to chain to one
 * and the same trusted certificate (PKCS7_verify checks each signer against the one-certificate
 * store edk2 builds per PK/KEK entry). Chains keep the RFC 5280 rules of asn1/chain.ts: a trusted
 * certificate is in a signer's chain from the certificates bag, or issued a certificate in it. It
 * does NOT check the timestamp ordering, the variable's attributes or validity dates (firmware
 * has no trusted time).
 */
import type { KeyObject } from "node:crypto";
import { anchorMatch, buildChain, trusts } from "../asn1/chain.js";
import {
  bagCertificates,
  buildSignedData,
  parseSignedData,
  verifySigners,
  type SignedData,
  type SignerVerdict,
} from "../asn1/cms.js";
import { isAsn1Error } from "../asn1/errors.js";
import { OID, oidName } from "../asn1/oid.js";
import { fingerprint256, parseCertificate, type Certificate } from "../asn1/x509.js";
import { VerdictBuilder, type Verdict } from "../core/verdict.js";
import { uefiPeError } from "./errors-pe.js";

export interface UefiVariableSignOptions {
  /** Wrap the SignedData in ContentInfo (default false: bare SignedData, as sbvarsign does). */
  readonly contentInfo?: boolean;
  /** Further certificates for the bag (intermediates), after the signer's. */
  readonly chain?: readonly Uint8Array[];
}

/** DER PKCS #7 SignedData over `data` for EFI_VARIABLE_AUTHENTICATION_2.AuthInfo.CertData. */
export function signDetachedForUefiVariable(
  data: Uint8Array,
  key: KeyObject,
  certificate: Uint8Array,
  opts: UefiVariableSignOptions = {},
): Uint8Array {
  if (key.asymmetricKeyType !== "rsa") {
    throw uefiPeError(
      "UEFI_ERR_PKCS7_UNSUPPORTED_KEY",
      `key type ${key.asymmetricKeyType ?? "?"}: UEFI authenticated variables need RSA`,
    );
  }
  return buildSignedData({
    contentType: OID.data,
    detachedContent: data,
    signers: [{ key, certificate, hash: "sha256", signedAttributes: false }],
    certificates: [certificate, ...(opts.chain ?? [])],
    wrapContentInfo: opts.contentInfo ?? false,
  });
}

/** `ok`: a signature verifies over the data and (when `trusted` was given) is anchored in one. */
export interface DetachedVerdict extends Verdict {
  readonly signers: readonly SignerVerdict[];
  /** Which trusted certificate authorised the signer, when one did. */
  readonly trustedBy:
    { readonly fingerprint256: string; readonly subject: string; readonly how: string } | undefined;
  readonly signedData: SignedData;
}

/** Parses CertData (with or without ContentInfo), typed UEFI_ERR_PKCS7_INVALID on failure. */
export function parseUefiSignedData(certData: Uint8Array): SignedData {
  try {
    return parseSignedData(certData);
  } catch (e) {
    if (isAsn1Error(e)) {
      throw uefiPeError("UEFI_ERR_PKCS7_INVALID", `PKCS #7 SignedData: ${e.message}`, e.details, {
        cause: e,
      });
    }
    throw e;
  }
}

/**
 * Verifies a detached UEFI variable signature over `data`; with `trusted` (DER certificates)
 * also decides trust. Returns a verdict; throws only for unparseable input.
 */
export function verifyDetached(
  certData: Uint8Array,
  data: Uint8Array,
  opts: { readonly trusted?: readonly Uint8Array[] } = {},
): DetachedVerdict {
  const sd = parseUefiSignedData(certData);
  const b = new VerdictBuilder();
  b.check(
    "uefi.pkcs7.digestAlgorithms",
    sd.digestAlgorithms.length === 1 && sd.digestAlgorithms[0] === OID.sha256,
    "sha256",
    sd.digestAlgorithms.map(oidName).join(","),
    "digestAlgorithms is not {SHA-256} (UEFI 2.10 8.2.2 step 3b)",
    "warning",
  );
  b.check(
    "uefi.pkcs7.contentType",
    sd.contentType === OID.data && sd.content === undefined,
    "data, content absent",
    `${oidName(sd.contentType)}${sd.content ? " with content" : ""}`,
    "contentInfo is not id-data with content absent (8.2.2 steps 3c, 3d)",
    "warning",
  );
  const signers = verifySigners(sd, { detachedContent: data, signedAttrsRule: "openssl-pkcs7" });
  for (const s of signers) {
    const si = sd.signerInfos[s.index];
    b.check(
      "uefi.pkcs7.noAuthenticatedAttributes",
      si?.signedAttrs === undefined,
      "none",
      "present",
      `signer ${s.index} has authenticatedAttributes (8.2.2 step 3g says none; edk2 verifies them as OpenSSL does)`,
      "warning",
    );
  }
  const bad = signers.filter((s) => !s.ok || !s.certificate);
  b.check(
    "uefi.pkcs7.signature",
    signers.length > 0 && bad.length === 0,
    "every signer verifies over the data",
    signers.length === 0 ? "no signer" : `${bad.length} of ${signers.length} signer(s) do not`,
    signers.length === 0
      ? "the SignedData has no signer"
      : bad
          .map(
            (s) =>
              `signer ${s.index}: ${s.findings
                .filter((f) => f.severity === "error")
                .map((f) => f.message)
                .join("; ")}`,
          )
          .join("; "),
  );
  const good = bad.length === 0 ? signers : [];
  let trustedBy: DetachedVerdict["trustedBy"];
  if (opts.trusted) {
    const bag = bagCertificates(sd);
    const anchors: Certificate[] = [];
    for (const t of opts.trusted) {
      try {
        anchors.push(parseCertificate(t));
      } catch (e) {
        if (!isAsn1Error(e)) throw e;
      }
    }
    // One trusted certificate must anchor every signer (edk2 calls Pkcs7Verify once per PK/KEK
    // certificate, each time with a store holding only that one).
    let refused: string | undefined;
    for (const a of good.length > 0 ? anchors : []) {
      let all = true;
      let how = "";
      for (const s of good) {
        const m = anchorMatch(buildChain(s.certificate as Certificate, bag), a);
        if (m && trusts(m)) {
          how ||= m.how;
          continue;
        }
        if (m) refused ??= m.problem;
        all = false;
        break;
      }
      if (all) {
        trustedBy = { fingerprint256: fingerprint256(a), subject: a.subject.text, how };
        break;
      }
    }
    b.check(
      "uefi.pkcs7.trusted",
      trustedBy !== undefined,
      "every signer chained to one trusted certificate",
      refused ?? "none",
      refused
        ? `the path to a trusted certificate is not valid: ${refused}`
        : good.length === 0
          ? "no trusted certificate is considered: not every signer verifies"
          : "no trusted certificate anchors every signer",
    );
  }
  return { ...b.verdict(), signers, trustedBy, signedData: sd };
}

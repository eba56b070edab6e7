/**
 * Quote verification (TCG TPM 2.0 Library Part 3, section 18.4 TPM2_Quote; Part 2, section
 * 10.12.12 TPMS_ATTEST and 10.12.4 TPMS_QUOTE_INFO), as google/go-attestation's
 * `AKPublic.Verify` does it, returning a {@link Verdict} with one finding per failed check.
 *
 * Checks, in order (finding ids):
 *   quote.parse          the attestation bytes decode as TPMS_ATTEST
 *   quote.signature      TPMT_SIGNATURE verifies over the received bytes with the AK
 *   quote.scheme         the signature scheme is the AK's own (when the AK public area is known)
 *   quote.magic          magic == TPM_GENERATED_VALUE (the TPM made this structure)
 *   quote.type           type == TPM_ST_ATTEST_QUOTE
 *   quote.nonce          extraData == the verifier's nonce
 *   quote.pcrSelection   the quoted selection == the expected selection (when given)
 *   quote.pcrValues      a value was supplied for every quoted PCR
 *   quote.pcrDigest      pcrDigest == H_sigHash(supplied PCR values in selection order)
 *   ak.*                 AK attribute checks (checkAkPublic), when the AK public area is known;
 *                        `ak.publicArea` (warning) when only a bare public key was given
 *
 * Does NOT check: that the AK belongs to a genuine TPM (credential activation / EK certificate),
 * that the PCR values are good (event-log replay and policy are the caller's), freshness beyond
 * the nonce, clock/resetCount/restartCount monotonicity, firmwareVersion, or qualifiedSigner.
 */
import type { KeyObject } from "node:crypto";
import { decode } from "../../core/codec.js";
import { isBulwarkError } from "../../core/errors.js";
import { algName, hash, TPM_ALG } from "../alg.js";
import { TPM_GENERATED_VALUE, TPM_ST } from "../constants.js";
import { concat } from "../names.js";
import { selectedIndices, type PcrValues } from "../pcr.js";
import {
  TPMS_ATTEST,
  TPMT_SIGNATURE,
  eccParms,
  rsaParms,
  type PublicArea,
  type TpmsAttest,
  type TpmsPcrSelection,
  type TpmsQuoteInfo,
  type TpmtSignature,
} from "../structures.js";
import { checkAkPublic } from "./ak.js";
import { publicKeyFromTpm } from "./keys.js";
import { verifyTpmSignature } from "./signature.js";
import { VerdictBuilder, type Verdict } from "../../core/verdict.js";
import { bytesEqual, toHex } from "../../core/bytes.js";

export interface QuoteToVerify {
  /** The AK: a public area (enables scheme and attribute checks) or a bare public key. */
  readonly ak: PublicArea | KeyObject;
  /** TPMS_ATTEST bytes exactly as signed. */
  readonly quoted: Uint8Array;
  /** The signature, decoded or as marshaled TPMT_SIGNATURE bytes. */
  readonly signature: TpmtSignature | Uint8Array;
  /** The nonce the verifier sent as qualifyingData. */
  readonly nonce: Uint8Array;
  /** PCR values to recompute pcrDigest from; without them quote.pcrDigest is reported unchecked. */
  readonly pcrs?: PcrValues;
  /** The selection the verifier asked for; without it any selection is accepted. */
  readonly expectedSelection?: readonly TpmsPcrSelection[];
  /** Also run the AK attribute checks (default true when the AK public area is known). */
  readonly checkAk?: boolean;
}

export interface QuoteVerdict extends Verdict {
  /** The decoded attestation, when it decoded. */
  readonly attest?: TpmsAttest;
  /** The selection the quote covers. */
  readonly selection?: readonly TpmsPcrSelection[];
}

/**
 * A quote verifier that keeps the KeyObject it built from each AK public area, so a service
 * verifying many quotes of one host's AK (HGS holds one decoded area per host) builds the key
 * once. Keyed by the area object itself (a WeakMap): an area the caller drops is forgotten, and
 * two verifiers — two services, two tests — share nothing. {@link verifyQuote} is the one-shot form.
 */
export class QuoteVerifier {
  private readonly keys = new WeakMap<PublicArea, KeyObject>();

  verify(q: QuoteToVerify): QuoteVerdict {
    return verifyWith(q, (ak) => {
      let k = this.keys.get(ak);
      if (!k) this.keys.set(ak, (k = publicKeyFromTpm(ak.value)));
      return k;
    });
  }
}

/** Verifies one quote; the AK's KeyObject is built for this call only (see {@link QuoteVerifier}). */
export function verifyQuote(q: QuoteToVerify): QuoteVerdict {
  return verifyWith(q, (ak) => publicKeyFromTpm(ak.value));
}

const isPublicArea = (x: PublicArea | KeyObject): x is PublicArea => "raw" in x && "value" in x;

function selectionText(sel: readonly TpmsPcrSelection[]): string {
  return (
    sel
      .map((s) => `${algName(s.hash).replace("TPM_ALG_", "").toLowerCase()}:${selectedIndices(s).join(",")}`)
      .join("+") || "(empty)"
  );
}

function sameSelection(a: readonly TpmsPcrSelection[], b: readonly TpmsPcrSelection[]): boolean {
  const norm = (s: readonly TpmsPcrSelection[]) => s.filter((x) => selectedIndices(x).length > 0);
  const na = norm(a);
  const nb = norm(b);
  return (
    na.length === nb.length &&
    na.every((x, i) => x.hash === nb[i]?.hash && selectedIndices(x).join() === selectedIndices(nb[i]!).join())
  );
}

function verifyWith(q: QuoteToVerify, akKey: (ak: PublicArea) => KeyObject): QuoteVerdict {
  const v = new VerdictBuilder();
  let attest: TpmsAttest;
  let signature: TpmtSignature;
  try {
    attest = decode(TPMS_ATTEST, q.quoted);
    v.passed.push("quote.parse");
  } catch (e) {
    if (!isBulwarkError(e)) throw e;
    v.fail(
      "quote.parse",
      "a TPMS_ATTEST structure",
      `${e.code}: ${e.message}`,
      "the quote is not a TPMS_ATTEST",
    );
    return v.verdict();
  }
  try {
    signature = q.signature instanceof Uint8Array ? decode(TPMT_SIGNATURE, q.signature) : q.signature;
  } catch (e) {
    if (!isBulwarkError(e)) throw e;
    v.fail(
      "quote.signature",
      "a TPMT_SIGNATURE structure",
      `${e.code}: ${e.message}`,
      "the signature does not decode",
    );
    return { ...v.verdict(), attest };
  }

  // The signature first: nothing else in the quote means anything if it does not verify.
  let key: KeyObject;
  try {
    key = isPublicArea(q.ak) ? akKey(q.ak) : q.ak;
  } catch (e) {
    if (!isBulwarkError(e)) throw e;
    v.fail(
      "quote.signature",
      "a usable AK public key",
      `${e.code}: ${e.message}`,
      "the AK cannot verify signatures",
    );
    return { ...v.verdict(), attest };
  }
  const sig = verifyTpmSignature(key, signature, q.quoted);
  v.check(
    "quote.signature",
    sig.ok,
    "valid signature by the AK",
    sig.ok ? "valid" : (sig.reason ?? "invalid"),
    "the quote signature does not verify",
  );
  if (isPublicArea(q.ak)) {
    const scheme = (rsaParms(q.ak.value) ?? eccParms(q.ak.value))?.scheme;
    if (scheme && scheme.scheme !== TPM_ALG.NULL) {
      const sigHash = (signature.signature as { hash?: number } | null)?.hash;
      v.check(
        "quote.scheme",
        scheme.scheme === signature.sigAlg && scheme.hashAlg === sigHash,
        `${algName(scheme.scheme)}/${algName(scheme.hashAlg ?? 0)}`,
        `${algName(signature.sigAlg)}/${algName(sigHash ?? 0)}`,
        "the signature scheme is not the AK's",
      );
    }
    if (q.checkAk !== false) v.merge(checkAkPublic(q.ak.value));
  } else {
    // Without the TPMT_PUBLIC nobody can tell the key is a restricted signing key, and only a
    // restricted key guarantees the TPM itself produced the signed TPMS_ATTEST.
    v.fail(
      "ak.publicArea",
      "the AK's TPM2B_PUBLIC (restricted, fixedTPM, ...)",
      "a bare public key",
      "AK attributes were not checked: the signature proves the key signed this, not that a TPM made it",
      "warning",
    );
  }

  v.check(
    "quote.magic",
    attest.magic === TPM_GENERATED_VALUE,
    `0x${TPM_GENERATED_VALUE.toString(16)}`,
    `0x${attest.magic.toString(16)}`,
    "not generated by a TPM (magic)",
  );
  const isQuote = v.check(
    "quote.type",
    attest.type === TPM_ST.ATTEST_QUOTE,
    "TPM_ST_ATTEST_QUOTE (0x8018)",
    `0x${attest.type.toString(16)}`,
    "the attestation is not a quote",
  );
  v.check(
    "quote.nonce",
    bytesEqual(attest.extraData, q.nonce),
    toHex(q.nonce),
    toHex(attest.extraData),
    "the quote was made for another nonce",
  );
  if (!isQuote) return { ...v.verdict(), attest };

  const info = attest.attested as TpmsQuoteInfo;
  if (q.expectedSelection) {
    v.check(
      "quote.pcrSelection",
      sameSelection(info.pcrSelect, q.expectedSelection),
      selectionText(q.expectedSelection),
      selectionText(info.pcrSelect),
      "the quote covers other PCRs than requested",
    );
  }
  if (!q.pcrs) {
    v.fail("quote.pcrDigest", "PCR values to check", "none supplied", "pcrDigest was not checked", "info");
    return { ...v.verdict(), attest, selection: info.pcrSelect };
  }
  const values: Uint8Array[] = [];
  const missing: string[] = [];
  for (const s of info.pcrSelect) {
    for (const i of selectedIndices(s)) {
      const val = q.pcrs.get(s.hash)?.get(i);
      if (val) values.push(val);
      else missing.push(`${algName(s.hash).replace("TPM_ALG_", "").toLowerCase()}:${i}`);
    }
  }
  if (
    !v.check(
      "quote.pcrValues",
      missing.length === 0,
      "a value for every quoted PCR",
      missing.length ? `missing ${missing.join(",")}` : "all present",
      "PCR values are missing",
    )
  ) {
    return { ...v.verdict(), attest, selection: info.pcrSelect };
  }
  const digestAlg = sig.hashAlg ?? TPM_ALG.SHA256;
  const computed = hash(digestAlg, concat(...values));
  v.check(
    "quote.pcrDigest",
    bytesEqual(computed, info.pcrDigest),
    toHex(info.pcrDigest),
    toHex(computed),
    "the supplied PCR values are not the quoted ones",
  );
  return { ...v.verdict(), attest, selection: info.pcrSelect };
}

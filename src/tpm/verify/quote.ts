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
 * Cost: a service verifies many quotes of few AKs, so a {@link QuoteVerifier} keeps, per AK
 * public area (keyed by its bytes), the KeyObject and the attribute verdict; everything about
 * the quote itself — signature, magic, type, nonce, selection, PCR digest — is checked on every
 * call. Expected/got texts are only formatted for a failed check.
 *
 * Does NOT check: that the AK belongs to a genuine TPM (credential activation / EK certificate),
 * that the PCR values are good (event-log replay and policy are the caller's), freshness beyond
 * the nonce, clock/resetCount/restartCount monotonicity, firmwareVersion, or qualifiedSigner.
 */
import type { KeyObject } from "node:crypto";
import { decode } from "../../core/codec.js";
import { isBulwarkError } from "../../core/errors.js";
import { BoundedMap } from "../../core/memo.js";
import { algName, digestBytes, digestEquals, HASHES, TPM_ALG } from "../alg.js";
import { TPM_GENERATED_VALUE, TPM_ST } from "../constants.js";
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
  type TpmtScheme,
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

/** What a verifier needs of an AK public area; every field is a pure function of its bytes. */
interface AkFacts {
  /** The public key; a typed error (TPM_ERR_INVALID_KEY, ...) when the area has none usable. */
  readonly key: KeyObject | { readonly error: unknown };
  /** checkAkPublic's verdict. */
  readonly checks: Verdict;
  /** The signing scheme the AK is restricted to, when it names one. */
  readonly scheme: TpmtScheme | undefined;
}

function akFacts(ak: PublicArea): AkFacts {
  let key: AkFacts["key"];
  try {
    key = publicKeyFromTpm(ak.value);
  } catch (e) {
    if (!isBulwarkError(e)) throw e;
    key = { error: e };
  }
  const scheme = (rsaParms(ak.value) ?? eccParms(ak.value))?.scheme;
  return {
    key,
    checks: checkAkPublic(ak.value),
    scheme: scheme && scheme.scheme !== TPM_ALG.NULL ? scheme : undefined,
  };
}

/**
 * A quote verifier that remembers what it learnt from each AK public area — the KeyObject and
 * the attribute verdict — keyed by the area's bytes (`PublicArea.raw`), at most `maxAks` of
 * them, least recently used first out. A service verifying many quotes of its hosts' AKs builds
 * each key once; two verifiers (two services, two tests) share nothing. {@link verifyQuote} is
 * the one-shot form.
 */
export class QuoteVerifier {
  private readonly aks: BoundedMap<string, AkFacts>;

  constructor(maxAks = 1024) {
    this.aks = new BoundedMap(maxAks);
  }

  verify(q: QuoteToVerify): QuoteVerdict {
    return verifyWith(q, (ak) => {
      // The bytes themselves as the key (latin1 maps each byte to one char): equal keys are equal areas.
      const k = Buffer.from(ak.raw.buffer, ak.raw.byteOffset, ak.raw.byteLength).toString("latin1");
      let facts = this.aks.get(k);
      if (!facts) this.aks.set(k, (facts = akFacts(ak)));
      return facts;
    });
  }
}

/** Verifies one quote; the AK's KeyObject is built for this call only (see {@link QuoteVerifier}). */
export function verifyQuote(q: QuoteToVerify): QuoteVerdict {
  return verifyWith(q, akFacts);
}

const isPublicArea = (x: PublicArea | KeyObject): x is PublicArea => "raw" in x && "value" in x;

const bankName = (alg: number): string => algName(alg).replace("TPM_ALG_", "").toLowerCase();

function selectionText(sel: readonly TpmsPcrSelection[]): string {
  return sel.map((s) => `${bankName(s.hash)}:${selectedIndices(s).join(",")}`).join("+") || "(empty)";
}

const selectsAny = (s: TpmsPcrSelection): boolean => s.pcrSelect.some((b) => b !== 0);

/** Same banks in the same order selecting the same PCRs; empty banks and select sizes aside. */
function sameSelection(a: readonly TpmsPcrSelection[], b: readonly TpmsPcrSelection[]): boolean {
  const na = a.filter(selectsAny);
  const nb = b.filter(selectsAny);
  return (
    na.length === nb.length &&
    na.every((x, i) => {
      const y = nb[i]!;
      if (x.hash !== y.hash) return false;
      const n = Math.max(x.pcrSelect.length, y.pcrSelect.length);
      for (let j = 0; j < n; j++) if ((x.pcrSelect[j] ?? 0) !== (y.pcrSelect[j] ?? 0)) return false;
      return true;
    })
  );
}

/**
 * The quoted PCR values in digest order (selection order, banks in list order, PCRs ascending;
 * Part 3, section 18.4), or the PCRs (bank:index) that have no value.
 */
function quotedValues(
  sel: readonly TpmsPcrSelection[],
  pcrs: PcrValues,
): { values: Uint8Array[]; missing: string[] } {
  const values: Uint8Array[] = [];
  const missing: string[] = [];
  for (const s of sel) {
    const bank = pcrs.get(s.hash);
    s.pcrSelect.forEach((byte, j) => {
      for (let bit = 0; byte !== 0 && bit < 8; bit++) {
        if ((byte & (1 << bit)) === 0) continue;
        const i = j * 8 + bit;
        const val = bank?.get(i);
        if (val) values.push(val);
        else missing.push(`${bankName(s.hash)}:${i}`);
      }
    });
  }
  return { values, missing };
}

/**
 * The verdict with the decoded attestation. Built field by field: an object spread here cost
 * as much as decoding the TPMS_ATTEST.
 */
function finish(
  v: VerdictBuilder,
  attest: TpmsAttest,
  selection?: readonly TpmsPcrSelection[],
): QuoteVerdict {
  const { ok, findings, passed } = v.verdict();
  return selection ? { ok, findings, passed, attest, selection } : { ok, findings, passed, attest };
}

function verifyWith(q: QuoteToVerify, facts: (ak: PublicArea) => AkFacts): QuoteVerdict {
  const v = new VerdictBuilder();
  let attest: TpmsAttest;
  let signature: TpmtSignature;
  try {
    attest = decode(TPMS_ATTEST, q.quoted);
    v.pass("quote.parse");
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
    return finish(v, attest);
  }

  // The signature first: nothing else in the quote means anything if it does not verify.
  const ak = isPublicArea(q.ak) ? facts(q.ak) : undefined;
  const key = ak ? ak.key : (q.ak as KeyObject);
  if ("error" in key) {
    const e = key.error as { code: string; message: string };
    v.fail(
      "quote.signature",
      "a usable AK public key",
      `${e.code}: ${e.message}`,
      "the AK cannot verify signatures",
    );
    return finish(v, attest);
  }
  const sig = verifyTpmSignature(key, signature, q.quoted);
  if (sig.ok) v.pass("quote.signature");
  else
    v.fail(
      "quote.signature",
      "valid signature by the AK",
      sig.reason ?? "invalid",
      "the quote signature does not verify",
    );
  if (ak) {
    const scheme = ak.scheme;
    if (scheme) {
      const sigHash = (signature.signature as { hash?: number } | null)?.hash;
      if (scheme.scheme === signature.sigAlg && scheme.hashAlg === sigHash) v.pass("quote.scheme");
      else
        v.fail(
          "quote.scheme",
          `${algName(scheme.scheme)}/${algName(scheme.hashAlg ?? 0)}`,
          `${algName(signature.sigAlg)}/${algName(sigHash ?? 0)}`,
          "the signature scheme is not the AK's",
        );
    }
    if (q.checkAk !== false) v.merge(ak.checks);
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

  if (attest.magic === TPM_GENERATED_VALUE) v.pass("quote.magic");
  else
    v.fail(
      "quote.magic",
      `0x${TPM_GENERATED_VALUE.toString(16)}`,
      `0x${attest.magic.toString(16)}`,
      "not generated by a TPM (magic)",
    );
  const isQuote = attest.type === TPM_ST.ATTEST_QUOTE;
  if (isQuote) v.pass("quote.type");
  else
    v.fail(
      "quote.type",
      "TPM_ST_ATTEST_QUOTE (0x8018)",
      `0x${attest.type.toString(16)}`,
      "the attestation is not a quote",
    );
  if (bytesEqual(attest.extraData, q.nonce)) v.pass("quote.nonce");
  else v.fail("quote.nonce", toHex(q.nonce), toHex(attest.extraData), "the quote was made for another nonce");
  if (!isQuote) return finish(v, attest);

  const info = attest.attested as TpmsQuoteInfo;
  if (q.expectedSelection) {
    if (sameSelection(info.pcrSelect, q.expectedSelection)) v.pass("quote.pcrSelection");
    else
      v.fail(
        "quote.pcrSelection",
        selectionText(q.expectedSelection),
        selectionText(info.pcrSelect),
        "the quote covers other PCRs than requested",
      );
  }
  if (!q.pcrs) {
    v.fail("quote.pcrDigest", "PCR values to check", "none supplied", "pcrDigest was not checked", "info");
    return finish(v, attest, info.pcrSelect);
  }
  const { values, missing } = quotedValues(info.pcrSelect, q.pcrs);
  if (missing.length > 0) {
    v.fail(
      "quote.pcrValues",
      "a value for every quoted PCR",
      `missing ${missing.join(",")}`,
      "PCR values are missing",
    );
    return finish(v, attest, info.pcrSelect);
  }
  v.pass("quote.pcrValues");
  // pcrDigest is computed with the hash of the signing scheme (Part 3, 18.4.1: "the hash
  // algorithm of the signing scheme"); an unsupported one cannot match anything.
  const hashInfo = HASHES.get(sig.hashAlg ?? TPM_ALG.SHA256);
  const concatenated = Buffer.concat(values);
  if (hashInfo && digestEquals(hashInfo.node, concatenated, info.pcrDigest)) v.pass("quote.pcrDigest");
  else
    v.fail(
      "quote.pcrDigest",
      toHex(info.pcrDigest),
      hashInfo ? toHex(digestBytes(hashInfo.node, concatenated)) : "(no supported hash)",
      "the supplied PCR values are not the quoted ones",
    );
  return finish(v, attest, info.pcrSelect);
}

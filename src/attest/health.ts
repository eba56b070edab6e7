/**
 * Health certificates: what a host receives after passing attestation and shows to Key
 * Protection. Format: JWS compact serialization (RFC 7515 §7.1) with ES256 (RFC 7518 §3.4,
 * P-256 + SHA-256, r‖s signature), header `{"alg":"ES256","typ":"bulwark-health+jws","kid":K}`
 * where K is the attestation signer's id (SHA-256 of its SPKI DER, hex). The payload binds the
 * host (`sub`), its attestation mode, and the host's key-release public key (`krk`, SPKI DER
 * base64): released keys are encrypted to that key only. Lifetime `nbf..exp` (default 8 h).
 *
 * The parser is total and bounded: any input yields a value or an HGS_ERR_HEALTH_CERTIFICATE.
 * What verification checks: signature by *this* HGS's signer, `kid`/`iss` equal that signer,
 * validity at `now` (with `skewSeconds`), the issue instant not before a deny-before date.
 * Revocation of the host is checked by the caller against the store.
 *
 * `iat` is a JWT NumericDate (whole seconds); `iatMs` carries the same instant in milliseconds,
 * so that a deny-before date ("now") and a host's restore are exact: a certificate issued in the
 * same second after either is accepted, one issued before is refused. A certificate without
 * `iatMs` (from a build before it) is taken as issued at the start of its `iat` second, which
 * errs toward refusing. `iatMs` must lie within the `iat` second.
 */
import { createHash, createPublicKey, randomBytes, sign, verify, type KeyObject } from "node:crypto";
import { hgsError } from "./errors.js";
import { PublicKeyCache, publicKeyFromSpki } from "./host-key.js";
import { BoundedMap } from "../core/memo.js";

export const HEALTH_TYP = "bulwark-health+jws";
export const MAX_HEALTH_CERTIFICATE_CHARS = 8192;

export type AttestationMode = "key" | "tpm";

export interface HealthClaims {
  readonly v: 1;
  readonly iss: string;
  readonly sub: string;
  readonly name: string;
  readonly mode: AttestationMode;
  /** The host's key-release public key, SPKI DER base64. */
  readonly krk: string;
  readonly iat: number;
  /** The issue instant in milliseconds since the epoch (absent in certificates of older builds). */
  readonly iatMs?: number;
  readonly nbf: number;
  readonly exp: number;
  readonly jti: string;
}

export interface ParsedHealthCertificate {
  readonly header: { readonly alg: "ES256"; readonly typ: string; readonly kid: string };
  readonly claims: HealthClaims;
  /** The exact signed bytes (`header.payload` ASCII) and the signature, kept as received. */
  readonly signingInput: Buffer;
  readonly signature: Buffer;
}

function bad(message: string, details: Record<string, unknown> = {}): never {
  throw hgsError("HGS_ERR_HEALTH_CERTIFICATE", message, {
    finding: "health-certificate.malformed",
    ...details,
  });
}

export function signerId(publicKey: KeyObject): string {
  const pub = publicKey.type === "private" ? createPublicKey(publicKey) : publicKey;
  return createHash("sha256")
    .update(pub.export({ type: "spki", format: "der" }))
    .digest("hex");
}

const B64URL = /^[A-Za-z0-9_-]*$/;
const HEX64 = /^[0-9a-f]{64}$/;

function decodeJsonPart(part: string, what: string): Record<string, unknown> {
  if (!B64URL.test(part)) bad(`${what} is not base64url`);
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
  } catch {
    bad(`${what} is not JSON`);
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) bad(`${what} is not a JSON object`);
  return v as Record<string, unknown>;
}

function str(o: Record<string, unknown>, k: string, max: number, re?: RegExp): string {
  const v = o[k];
  if (typeof v !== "string" || v.length === 0 || v.length > max || (re && !re.test(v)))
    bad(`claim '${k}' is missing or invalid`);
  return v;
}

function int(o: Record<string, unknown>, k: string): number {
  const v = o[k];
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) bad(`claim '${k}' is missing or invalid`);
  return v;
}

/** Parses a health certificate without verifying it. */
export function parseHealthCertificate(text: unknown): ParsedHealthCertificate {
  if (typeof text !== "string") bad("the health certificate is not a string");
  if (text.length > MAX_HEALTH_CERTIFICATE_CHARS) bad("the health certificate is too long");
  const parts = text.split(".");
  if (parts.length !== 3) bad("the health certificate is not a JWS compact serialization (3 parts)");
  const [h, p, s] = parts as [string, string, string];
  const header = decodeJsonPart(h, "header");
  if (header.alg !== "ES256") bad("the health certificate's alg is not ES256", { got: String(header.alg) });
  const typ = str(header, "typ", 64);
  if (typ !== HEALTH_TYP) bad(`typ is not ${HEALTH_TYP}`);
  const kid = str(header, "kid", 64, HEX64);
  const o = decodeJsonPart(p, "payload");
  if (o.v !== 1) bad("unsupported health certificate version");
  const mode = o.mode;
  if (mode !== "key" && mode !== "tpm") bad("claim 'mode' is missing or invalid");
  const claims: HealthClaims = {
    v: 1,
    iss: str(o, "iss", 64, HEX64),
    sub: str(o, "sub", 64, HEX64),
    name: str(o, "name", 256),
    mode,
    krk: str(o, "krk", 2048, /^[A-Za-z0-9+/]+={0,2}$/),
    iat: int(o, "iat"),
    ...(o.iatMs !== undefined ? { iatMs: int(o, "iatMs") } : {}),
    nbf: int(o, "nbf"),
    exp: int(o, "exp"),
    jti: str(o, "jti", 64, /^[0-9a-f]{32}$/),
  };
  if (claims.iatMs !== undefined && Math.floor(claims.iatMs / 1000) !== claims.iat)
    bad("claim 'iatMs' is not within the 'iat' second");
  if (!B64URL.test(s)) bad("signature is not base64url");
  const signature = Buffer.from(s, "base64url");
  if (signature.length !== 64) bad("an ES256 signature is 64 bytes", { got: signature.length });
  return {
    header: { alg: "ES256", typ, kid },
    claims,
    signingInput: Buffer.from(`${h}.${p}`, "ascii"),
    signature,
  };
}

export interface IssueOptions {
  readonly signer: KeyObject;
  readonly hostId: string;
  readonly name: string;
  readonly mode: AttestationMode;
  readonly keyReleaseKey: KeyObject;
  readonly lifetimeSeconds: number;
  readonly now?: number;
  /** Precomputed `signerId(signer)` and key-release SPKI DER (hot path: avoids re-encoding keys). */
  readonly kid?: string;
  readonly keyReleaseSpki?: Uint8Array;
}

export function issueHealthCertificate(o: IssueOptions): { text: string; claims: HealthClaims } {
  const kid = o.kid ?? signerId(o.signer);
  const nowMs = Math.floor(o.now ?? Date.now());
  const now = Math.floor(nowMs / 1000);
  const claims: HealthClaims = {
    v: 1,
    iss: kid,
    sub: o.hostId,
    name: o.name,
    mode: o.mode,
    krk: Buffer.from(o.keyReleaseSpki ?? o.keyReleaseKey.export({ type: "spki", format: "der" })).toString(
      "base64",
    ),
    iat: now,
    iatMs: nowMs,
    nbf: now - 60,
    exp: now + o.lifetimeSeconds,
    jti: randomBytes(16).toString("hex"),
  };
  const h = Buffer.from(JSON.stringify({ alg: "ES256", typ: HEALTH_TYP, kid })).toString("base64url");
  const p = Buffer.from(JSON.stringify(claims)).toString("base64url");
  const sig = sign("sha256", Buffer.from(`${h}.${p}`, "ascii"), { key: o.signer, dsaEncoding: "ieee-p1363" });
  return { text: `${h}.${p}.${sig.toString("base64url")}`, claims };
}

export interface VerifyHealthOptions {
  readonly signerPublic: KeyObject;
  readonly now?: number;
  readonly skewSeconds?: number;
  /** Certificates issued before this instant (ms since epoch; {@link issuedAtMs}) are refused. */
  readonly denyBefore?: number;
  /** Precomputed `signerId(signerPublic)`. */
  readonly signerId?: string;
}

function unknownIssuer(c: ParsedHealthCertificate, kid: string): void {
  if (c.header.kid !== kid || c.claims.iss !== kid) {
    throw hgsError("HGS_ERR_HEALTH_CERTIFICATE", "the health certificate was issued by another HGS", {
      finding: "health-certificate.unknown-issuer",
      expected: kid,
      got: c.header.kid,
    });
  }
}

function checkSignature(c: ParsedHealthCertificate, signerPublic: KeyObject): void {
  const ok = verify("sha256", c.signingInput, { key: signerPublic, dsaEncoding: "ieee-p1363" }, c.signature);
  if (!ok) {
    throw hgsError("HGS_ERR_HEALTH_CERTIFICATE", "the health certificate's signature does not verify", {
      finding: "health-certificate.bad-signature",
    });
  }
}

/** When the certificate was issued, in ms (see the header: `iatMs`, else the start of `iat`). */
export function issuedAtMs(claims: HealthClaims): number {
  return claims.iatMs ?? claims.iat * 1000;
}

/** Validity period, deny-before date and the key-release key: checked on every call. */
function checkClaims(
  c: ParsedHealthCertificate,
  o: VerifyHealthOptions,
  keyOf: (der: Uint8Array) => KeyObject,
): ParsedHealthCertificate & { krk: KeyObject } {
  const now = Math.floor((o.now ?? Date.now()) / 1000);
  const skew = o.skewSeconds ?? 60;
  if (now + skew < c.claims.nbf) {
    throw hgsError("HGS_ERR_HEALTH_CERTIFICATE", "the health certificate is not yet valid", {
      finding: "health-certificate.not-yet-valid",
      nbf: c.claims.nbf,
      now,
    });
  }
  if (now - skew >= c.claims.exp) {
    throw hgsError("HGS_ERR_HEALTH_CERTIFICATE", "the health certificate has expired", {
      finding: "health-certificate.expired",
      exp: c.claims.exp,
      now,
    });
  }
  if (o.denyBefore !== undefined && issuedAtMs(c.claims) < o.denyBefore) {
    throw hgsError(
      "HGS_ERR_HEALTH_CERTIFICATE",
      "the health certificate was issued before the deny-before date",
      {
        finding: "health-certificate.issued-before-deny-date",
        issuedAt: issuedAtMs(c.claims),
        denyBefore: o.denyBefore,
      },
    );
  }
  let krk: KeyObject;
  try {
    krk = keyOf(Buffer.from(c.claims.krk, "base64"));
  } catch {
    return bad("the key-release key in the health certificate is not a public key");
  }
  return { ...c, krk };
}

/** Parses and verifies once, without memo; throws HGS_ERR_HEALTH_CERTIFICATE with a `finding` id. */
export function verifyHealthCertificate(
  text: unknown,
  o: VerifyHealthOptions,
): ParsedHealthCertificate & { krk: KeyObject } {
  const c = parseHealthCertificate(text);
  unknownIssuer(c, o.signerId ?? signerId(o.signerPublic));
  checkSignature(c, o.signerPublic);
  return checkClaims(c, o, publicKeyFromSpki);
}

/**
 * Health-certificate verification for a key service, with memo: a host shows the same
 * certificate for every key release until it re-attests, and parsing plus an ES256 check is the
 * larger part of verifying one. Signature validity is a pure function of (signer key, text), so
 * a hit is the same verdict; issuer, validity period and deny-before date are checked on every
 * call. Only successes are kept; bounded per signer, least recently used out first. One verifier
 * belongs to one service (the HGS context): two services in one process share nothing.
 */
export class HealthVerifier {
  private readonly signatureVerified = new WeakMap<KeyObject, BoundedMap<string, ParsedHealthCertificate>>();

  constructor(
    private readonly keys: PublicKeyCache = new PublicKeyCache(),
    private readonly perSigner = 2048,
  ) {}

  /** Parses and verifies; throws HGS_ERR_HEALTH_CERTIFICATE with a `finding` id in details. */
  verify(text: unknown, o: VerifyHealthOptions): ParsedHealthCertificate & { krk: KeyObject } {
    const kid = o.signerId ?? signerId(o.signerPublic);
    const c = this.parseAndCheckSignature(text, o.signerPublic, kid);
    return checkClaims(c, o, (der) => this.keys.fromSpki(der));
  }

  private parseAndCheckSignature(
    text: unknown,
    signerPublic: KeyObject,
    kid: string,
  ): ParsedHealthCertificate {
    let known = this.signatureVerified.get(signerPublic);
    const hit = typeof text === "string" ? known?.get(text) : undefined;
    if (hit) {
      unknownIssuer(hit, kid);
      return hit;
    }
    const c = parseHealthCertificate(text);
    unknownIssuer(c, kid);
    checkSignature(c, signerPublic);
    if (!known) {
      known = new BoundedMap(this.perSigner);
      this.signatureVerified.set(signerPublic, known);
    }
    Object.freeze(c.header);
    Object.freeze(c.claims);
    known.set(text as string, Object.freeze(c));
    return c;
  }
}

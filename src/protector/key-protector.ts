/**
 * Key protectors (Hyper-V `Set-VMKeyProtector` analogue), format in
 * docs/formats/key-protector.md and ./format.ts.
 *
 * A key protector holds a random 256-bit transport key wrapped to each guardian's encryption
 * key, the owner's signature over the guardian set (not over the wrapped keys, so a key
 * service can roll the transport key without the owner), and an HMAC-SHA256 over everything
 * under a key derived from the transport key (HKDF, RFC 5869).
 *
 * What verification does not check: certificate validity periods, revocation of guardian
 * certificates, or that the owner is who you think it is unless `expectedOwner` is given (the
 * owner key is carried in the protector itself; pin it, or compare with the last known good).
 */
import { createHmac, randomBytes, type KeyObject } from "node:crypto";
import { bytesEqual, secretsEqual } from "../core/bytes.js";
import { decode, encode } from "../core/codec.js";
import { BoundedMap, contentKey } from "../core/memo.js";
import { decodeAs, type ProtectorError, protectorError, isProtectorError } from "./errors.js";
import {
  GuardianSet,
  KeyProtectorBody,
  KeyProtectorFile,
  KP_MAGIC,
  KP_VERSION,
  KP_VERSION_OF_SCHEME,
  KP_VERSIONS,
  KpHeader,
  MAX_GUARDIANS,
  type GuardianEntry,
  type WrappedKey,
} from "./format.js";
import {
  checkGuardian,
  checkGuardianPublic,
  encryptionThumbprint,
  GuardianChecker,
  guardianThumbprint,
  sha256Hex,
  summarizeGuardian,
  type Guardian,
  type GuardianCertificates,
  type GuardianPublic,
  type GuardianSummary,
} from "./guardian.js";
import { hkdfExpand, hkdfExtract, zeroize } from "./kdf.js";
import {
  nameOf,
  PublicPoints,
  SignatureAlgorithm,
  signMessage,
  unwrapSecret,
  verifyMessage,
  WrapScheme,
  wrapSecret,
  type SignatureAlgorithmName,
  type WrapSchemeName,
} from "./keys.js";
import type { TransportKey } from "./transport-key.js";
import { reencryptVmSecrets } from "./vm-secrets.js";

export const TRANSPORT_KEY_BYTES = 32;
const SIGNATURE_CONTEXT = Buffer.from("bulwark key-protector guardian-set v1\0");
const WRAP_CONTEXT = Buffer.from("bulwark key-protector transport-key v1\0");
const MAC_INFO = Buffer.from("bulwark key-protector mac v1");
const MAX_GENERATION = 0xffffffff;

/** A decoded key protector (structure only: nothing is verified by decoding). */
export interface KeyProtector {
  /** The exact bytes decoded. */
  readonly raw: Uint8Array;
  readonly version: number;
  readonly protectorId: Uint8Array;
  readonly guardianSetGeneration: number;
  readonly owner: GuardianPublic;
  readonly guardians: readonly GuardianPublic[];
  /** Received bytes of BULWARK_GUARDIAN_SET: what the owner signed. */
  readonly guardianSetRaw: Uint8Array;
  readonly signatureAlgorithm: SignatureAlgorithmName;
  readonly signature: Uint8Array;
  readonly keyGeneration: number;
  readonly wraps: readonly {
    readonly scheme: WrapSchemeName;
    readonly enc: Uint8Array;
    readonly ciphertext: Uint8Array;
  }[];
  /** Received bytes the MAC covers (header and body). */
  readonly macInput: Uint8Array;
  readonly mac: Uint8Array;
}

function formatError(message: string, details: Record<string, unknown> = {}): never {
  throw protectorError("PROTECTOR_ERR_FORMAT", message, details);
}

const HPKE_ENC_BYTES: Partial<Record<WrapSchemeName, number>> = {
  "hpke-p256-sha256-aes256gcm": 65,
  "hpke-p384-sha384-aes256gcm": 97,
  "hpke-x25519-sha256-aes256gcm": 32,
};

/** Decodes a key protector (bounded, total): a value, or PROTECTOR_ERR_FORMAT / _VERSION. */
export function parseKeyProtector(bytes: Uint8Array): KeyProtector {
  const header = decodeAs("PROTECTOR_ERR_FORMAT", "key protector header", () =>
    decode(KpHeader, bytes, { allowTrailing: true }),
  );
  if (!KP_VERSIONS.includes(header.version)) {
    throw protectorError(
      "PROTECTOR_ERR_VERSION",
      `key protector format version ${header.version} is not supported (this Bulwark reads versions ${KP_VERSIONS.join(", ")})`,
      { version: header.version },
    );
  }
  const file = decodeAs("PROTECTOR_ERR_FORMAT", "key protector", () => decode(KeyProtectorFile, bytes));
  const body = file.body.value;
  const gs = body.guardianSet.value;
  const signatureAlgorithm = nameOf(SignatureAlgorithm, body.signature.algorithm);
  if (!signatureAlgorithm) formatError(`unknown owner signature algorithm ${body.signature.algorithm}`);
  if (gs.guardians.length === 0) formatError("the key protector lists no guardians");
  if (body.wraps.length !== gs.guardians.length) {
    formatError(`${body.wraps.length} wrapped keys for ${gs.guardians.length} guardians`);
  }
  const seen = new Set<string>();
  for (const g of gs.guardians) {
    const t = sha256Hex(g.encryptionCertificate);
    if (seen.has(t)) formatError(`guardian '${g.name}' is listed twice`);
    seen.add(t);
  }
  const wraps = body.wraps.map((w, i) => {
    const scheme = nameOf(WrapScheme, w.scheme);
    if (!scheme) return formatError(`wrapped key ${i} has unknown scheme ${w.scheme}`, { index: i });
    if ((KP_VERSION_OF_SCHEME[w.scheme] ?? Infinity) > header.version) {
      formatError(`wrapped key ${i}: scheme ${scheme} is not allowed in format version ${header.version}`, {
        index: i,
      });
    }
    const encBytes = HPKE_ENC_BYTES[scheme] ?? 0;
    if (w.enc.length !== encBytes)
      formatError(`wrapped key ${i}: enc has ${w.enc.length} bytes`, { index: i });
    return { scheme, enc: w.enc, ciphertext: w.ciphertext };
  });
  return {
    raw: bytes,
    version: header.version,
    protectorId: gs.protectorId,
    guardianSetGeneration: gs.generation,
    owner: gs.owner,
    guardians: gs.guardians,
    guardianSetRaw: body.guardianSet.raw,
    signatureAlgorithm,
    signature: body.signature.value,
    keyGeneration: body.keyGeneration,
    wraps,
    macInput: file.body.raw,
    mac: file.mac,
  };
}

/** A model as given, or the bytes decoded (PROTECTOR_ERR_FORMAT / _VERSION). */
function asParsed(kp: Uint8Array | KeyProtector): KeyProtector {
  return kp instanceof Uint8Array ? parseKeyProtector(kp) : kp;
}

function rawOf(kp: Uint8Array | KeyProtector): Uint8Array {
  return kp instanceof Uint8Array ? kp : kp.raw;
}

function signatureMessage(guardianSetRaw: Uint8Array): Buffer {
  return Buffer.concat([SIGNATURE_CONTEXT, guardianSetRaw]);
}

/**
 * What a key service remembers between key protectors, owned by that service (two services, two
 * tests share nothing): guardians whose certificates checked out, owner signatures that
 * verified, and the EC points of guardian encryption keys. A key service rolls the same VM's
 * protector again and again with the guardian set and signature byte-identical. Each verdict is a
 * pure function of the bytes hashed into its key, so a hit is the same verdict; only successes
 * are kept; bounded. Every function here works without one, checking everything anew.
 */
export class ProtectorMemo {
  readonly guardians = new GuardianChecker();
  readonly points = new PublicPoints();
  readonly ownerSignatures = new BoundedMap<string, true>(4096);
}

const checkPublic = (g: GuardianPublic, memo: ProtectorMemo | undefined): GuardianCertificates =>
  memo ? memo.guardians.check(g) : checkGuardianPublic(g);

function ownerSignatureKey(kp: KeyProtector): string {
  const o = kp.owner;
  return contentKey(
    o.name,
    o.signingCertificate,
    o.encryptionCertificate,
    kp.signatureAlgorithm,
    kp.signature,
    kp.guardianSetRaw,
  );
}

/** Throws PROTECTOR_ERR_OWNER_SIGNATURE unless the owner's signature over the received guardian set verifies. */
export function verifyOwnerSignature(kp: KeyProtector, memo?: ProtectorMemo): void {
  const key = memo && ownerSignatureKey(kp);
  if (key && memo.ownerSignatures.has(key)) return;
  const owner = checkPublic(kp.owner, memo);
  if (
    !verifyMessage(
      owner.signing.publicKey,
      kp.signatureAlgorithm,
      signatureMessage(kp.guardianSetRaw),
      kp.signature,
    )
  ) {
    throw protectorError(
      "PROTECTOR_ERR_OWNER_SIGNATURE",
      `the owner's signature over the guardian set does not verify (owner '${kp.owner.name}' ${guardianThumbprint(kp.owner)})`,
      { owner: { name: kp.owner.name, thumbprint: guardianThumbprint(kp.owner) } },
    );
  }
  if (key) memo.ownerSignatures.set(key, true);
}

function wrapContext(protectorId: Uint8Array, keyGeneration: number, g: GuardianPublic): Buffer {
  const gen = Buffer.alloc(4);
  gen.writeUInt32BE(keyGeneration);
  return Buffer.concat([WRAP_CONTEXT, protectorId, gen, Buffer.from(encryptionThumbprint(g), "hex")]);
}

/**
 * HKDF-SHA256 (RFC 5869; salt = protector id). Extract and expand over HMAC directly: node's
 * `hkdfSync` makes a secret KeyObject per call, which cost more than both HMACs together.
 */
function macKey(transportKey: Uint8Array, protectorId: Uint8Array): Buffer {
  const prk = hkdfExtract("sha256", protectorId, transportKey);
  try {
    return hkdfExpand("sha256", prk, MAC_INFO, 32);
  } finally {
    zeroize(prk);
  }
}

function computeMac(transportKey: Uint8Array, protectorId: Uint8Array, macInput: Uint8Array): Buffer {
  const k = macKey(transportKey, protectorId);
  try {
    return createHmac("sha256", k).update(macInput).digest();
  } finally {
    zeroize(k);
  }
}

function verifyMac(kp: KeyProtector, transportKey: Uint8Array): void {
  const expected = computeMac(transportKey, kp.protectorId, kp.macInput);
  if (!secretsEqual(expected, kp.mac)) {
    throw protectorError("PROTECTOR_ERR_MAC", "the key protector's MAC does not verify: it was altered", {
      protectorId: Buffer.from(kp.protectorId).toString("hex"),
    });
  }
}

interface AssembleInput {
  readonly guardianSet: { value: GuardianSet; raw: Uint8Array };
  readonly signatureAlgorithm: SignatureAlgorithmName;
  readonly signature: Uint8Array;
  readonly keyGeneration: number;
  readonly wraps: readonly WrappedKey[];
  readonly transportKey: Uint8Array;
}

/** The lowest format version that holds every wrap (format.ts): version-1 readers keep reading. */
function versionFor(wraps: readonly WrappedKey[]): number {
  return wraps.reduce((v, w) => Math.max(v, KP_VERSION_OF_SCHEME[w.scheme] ?? KP_VERSION), 1);
}

function assemble(a: AssembleInput): Uint8Array {
  const body = encode(KeyProtectorBody, {
    magic: KP_MAGIC,
    version: versionFor(a.wraps),
    reserved: 0,
    guardianSet: a.guardianSet,
    signature: { algorithm: SignatureAlgorithm[a.signatureAlgorithm], value: a.signature },
    keyGeneration: a.keyGeneration,
    wraps: [...a.wraps],
  });
  const mac = computeMac(a.transportKey, a.guardianSet.value.protectorId, body);
  const out = new Uint8Array(body.length + mac.length);
  out.set(body);
  out.set(mac, body.length);
  return out;
}

function entry(g: GuardianPublic): GuardianEntry {
  return {
    name: g.name,
    signingCertificate: g.signingCertificate,
    encryptionCertificate: g.encryptionCertificate,
  };
}

function wrapFor(
  g: GuardianPublic,
  key: Uint8Array,
  protectorId: Uint8Array,
  keyGeneration: number,
  memo: ProtectorMemo | undefined,
): WrappedKey {
  const certs = checkPublic(g, memo);
  const w = wrapSecret(
    certs.encryption.publicKey,
    key,
    wrapContext(protectorId, keyGeneration, g),
    memo?.points,
  );
  return { scheme: WrapScheme[w.scheme], enc: w.enc, ciphertext: w.ciphertext };
}

function signedGuardianSet(value: GuardianSet, ownerKey: KeyObject) {
  const raw = encode(GuardianSet, value);
  const { algorithm, signature } = signMessage(ownerKey, signatureMessage(raw));
  return { guardianSet: { value, raw }, signatureAlgorithm: algorithm, signature };
}

function sameGuardian(a: GuardianPublic, b: GuardianPublic): boolean {
  return (
    bytesEqual(a.signingCertificate, b.signingCertificate) ||
    bytesEqual(a.encryptionCertificate, b.encryptionCertificate)
  );
}

export interface CreateKeyProtectorOptions {
  /** The owner: signs the guardian set; with `ownerCanUnwrap`, also a guardian. */
  readonly owner: Guardian;
  /** Further guardians (e.g. this host's UntrustedGuardian, HGS guardians). */
  readonly guardians?: readonly GuardianPublic[];
  /** Default true: the owner is listed first among the guardians. */
  readonly ownerCanUnwrap?: boolean;
  /** The caller's memo (see {@link ProtectorMemo}). */
  readonly memo?: ProtectorMemo;
}

/** Creates a key protector with a fresh transport key (returned: the caller seals VM secrets with it). */
export function createKeyProtector(opts: CreateKeyProtectorOptions): {
  keyProtector: Uint8Array;
  transportKey: TransportKey;
} {
  checkGuardian(opts.owner, opts.memo?.guardians);
  const list: GuardianPublic[] = [];
  for (const g of [...(opts.ownerCanUnwrap === false ? [] : [opts.owner]), ...(opts.guardians ?? [])]) {
    if (list.some((x) => sameGuardian(x, g))) {
      throw protectorError("PROTECTOR_ERR_GUARDIAN_EXISTS", `guardian '${g.name}' is given twice`);
    }
    list.push(g);
  }
  if (list.length === 0) {
    throw protectorError("PROTECTOR_ERR_LAST_GUARDIAN", "a key protector needs at least one guardian");
  }
  if (list.length > MAX_GUARDIANS) {
    throw protectorError("PROTECTOR_ERR_INVALID_ARGUMENT", `at most ${MAX_GUARDIANS} guardians`);
  }
  const protectorId = new Uint8Array(randomBytes(16));
  const key = randomBytes(TRANSPORT_KEY_BYTES);
  const signed = signedGuardianSet(
    { protectorId, generation: 1, owner: entry(opts.owner), guardians: list.map(entry) },
    opts.owner.signingKey,
  );
  const keyProtector = assemble({
    ...signed,
    keyGeneration: 1,
    wraps: list.map((g) => wrapFor(g, key, protectorId, 1, opts.memo)),
    transportKey: key,
  });
  return { keyProtector, transportKey: { key, protectorId, keyGeneration: 1 } };
}

export interface UnwrapOptions {
  /** Signing-certificate thumbprint the owner must have (PROTECTOR_ERR_OWNER_MISMATCH otherwise). */
  readonly expectedOwner?: string;
  /** The caller's memo (see {@link ProtectorMemo}). */
  readonly memo?: ProtectorMemo;
}

export interface UnwrappedTransportKey extends TransportKey {
  /** The local guardian whose key unwrapped it. */
  readonly guardian: { readonly name: string; readonly thumbprint: string };
  readonly guardianSetGeneration: number;
}

function who(g: GuardianPublic): { name: string; thumbprint: string } {
  return { name: g.name, thumbprint: guardianThumbprint(g) };
}

function notAuthorized(kp: KeyProtector, local: readonly GuardianPublic[]): ProtectorError {
  const listed = kp.guardians.map(who);
  const mine = local.map(who);
  const fmt = (xs: { name: string; thumbprint: string }[]) =>
    xs.map((x) => `'${x.name}' (${x.thumbprint})`).join(", ") || "none";
  return protectorError(
    "PROTECTOR_ERR_NOT_AUTHORIZED",
    `this host cannot unwrap the key protector: none of its guardians [${fmt(mine)}] is among the ` +
      `key protector's guardians [${fmt(listed)}]. To authorize this host, export its guardian's ` +
      `public certificates (PEM) and have the owner '${kp.owner.name}' grant that guardian access, ` +
      `or unwrap through a Host Guardian Service that is a guardian of this VM.`,
    { guardians: listed, localGuardians: mine, owner: who(kp.owner) },
  );
}

/**
 * Unwraps the transport key with one of the local guardians: checks the format, the owner's
 * signature over the guardian set (and `expectedOwner`), unwraps, then checks the MAC.
 */
export function unwrapKeyProtector(
  bytes: Uint8Array | KeyProtector,
  localGuardians: readonly Guardian[],
  opts: UnwrapOptions = {},
): UnwrappedTransportKey {
  const kp = asParsed(bytes);
  verifyOwnerSignature(kp, opts.memo);
  if (opts.expectedOwner !== undefined && guardianThumbprint(kp.owner) !== opts.expectedOwner.toLowerCase()) {
    throw protectorError(
      "PROTECTOR_ERR_OWNER_MISMATCH",
      `the key protector's owner '${kp.owner.name}' (${guardianThumbprint(kp.owner)}) is not the expected owner (${opts.expectedOwner})`,
      { owner: who(kp.owner), expectedOwner: opts.expectedOwner },
    );
  }
  let lastError: unknown;
  let matched = false;
  for (const local of localGuardians) {
    const i = kp.guardians.findIndex((g) => bytesEqual(g.encryptionCertificate, local.encryptionCertificate));
    const listed = kp.guardians[i];
    const wrap = kp.wraps[i];
    if (!listed || !wrap) continue;
    matched = true;
    let key: Buffer;
    try {
      key = unwrapSecret(
        local.encryptionKey,
        wrap,
        wrapContext(kp.protectorId, kp.keyGeneration, listed),
        opts.memo?.points,
      );
    } catch (e) {
      lastError = e;
      continue;
    }
    if (key.length !== TRANSPORT_KEY_BYTES) {
      zeroize(key);
      lastError = protectorError("PROTECTOR_ERR_UNWRAP", "the unwrapped transport key has the wrong length");
      continue;
    }
    try {
      verifyMac(kp, key);
    } catch (e) {
      zeroize(key);
      throw e;
    }
    return {
      key,
      protectorId: kp.protectorId,
      keyGeneration: kp.keyGeneration,
      guardianSetGeneration: kp.guardianSetGeneration,
      guardian: who(listed),
    };
  }
  if (!matched) throw notAuthorized(kp, localGuardians);
  throw isProtectorError(lastError)
    ? lastError
    : protectorError(
        "PROTECTOR_ERR_UNWRAP",
        "the transport key could not be unwrapped",
        {},
        { cause: lastError },
      );
}

function asList(g: Guardian | readonly Guardian[]): readonly Guardian[] {
  return Array.isArray(g) ? (g as readonly Guardian[]) : [g as Guardian];
}

function requireOwner(kp: KeyProtector, owner: Guardian, memo: ProtectorMemo | undefined): void {
  checkGuardian(owner, memo?.guardians);
  if (!bytesEqual(kp.owner.signingCertificate, owner.signingCertificate)) {
    throw protectorError(
      "PROTECTOR_ERR_NOT_OWNER",
      `'${owner.name}' (${guardianThumbprint(owner)}) is not the owner of this key protector ('${kp.owner.name}' ${guardianThumbprint(kp.owner)})`,
      { owner: who(kp.owner), given: who(owner) },
    );
  }
}

function nextGeneration(n: number, what: string): number {
  if (n >= MAX_GENERATION)
    throw protectorError("PROTECTOR_ERR_INVALID_ARGUMENT", `${what} generation exhausted`);
  return n + 1;
}

export interface ChangeGuardiansOptions {
  /** The owner, with its signing key. */
  readonly owner: Guardian;
  /** Guardians that can unwrap the current transport key (default: the owner). */
  readonly unwrapWith?: readonly Guardian[];
  /** The caller's memo (see {@link ProtectorMemo}). */
  readonly memo?: ProtectorMemo;
}

/** Adds a guardian (needs the owner's signing key and a guardian that can unwrap). The transport key is unchanged. */
export function grantGuardian(
  bytes: Uint8Array,
  guardian: GuardianPublic,
  opts: ChangeGuardiansOptions,
): Uint8Array {
  const kp = parseKeyProtector(bytes);
  requireOwner(kp, opts.owner, opts.memo);
  checkPublic(guardian, opts.memo);
  if (kp.guardians.some((g) => sameGuardian(g, guardian))) {
    throw protectorError(
      "PROTECTOR_ERR_GUARDIAN_EXISTS",
      `guardian '${guardian.name}' (${guardianThumbprint(guardian)}) is already in the key protector`,
    );
  }
  if (kp.guardians.length >= MAX_GUARDIANS) {
    throw protectorError("PROTECTOR_ERR_INVALID_ARGUMENT", `at most ${MAX_GUARDIANS} guardians`);
  }
  const t = unwrapKeyProtector(kp, opts.unwrapWith ?? [opts.owner], opts.memo ? { memo: opts.memo } : {});
  try {
    const signed = signedGuardianSet(
      {
        protectorId: kp.protectorId,
        generation: nextGeneration(kp.guardianSetGeneration, "guardian set"),
        owner: entry(kp.owner),
        guardians: [...kp.guardians.map(entry), entry(guardian)],
      },
      opts.owner.signingKey,
    );
    return assemble({
      ...signed,
      keyGeneration: kp.keyGeneration,
      wraps: [
        ...kp.wraps.map((w) => ({ scheme: WrapScheme[w.scheme], enc: w.enc, ciphertext: w.ciphertext })),
        wrapFor(guardian, t.key, kp.protectorId, kp.keyGeneration, opts.memo),
      ],
      transportKey: t.key,
    });
  } finally {
    zeroize(t.key);
  }
}

/** Finds guardians by name or by (signing or encryption) thumbprint. */
function findGuardian(kp: KeyProtector, ref: string): number {
  const r = ref.toLowerCase();
  const byThumb = kp.guardians.findIndex((g) => guardianThumbprint(g) === r || encryptionThumbprint(g) === r);
  if (byThumb >= 0) return byThumb;
  const byName = kp.guardians.flatMap((g, i) => (g.name === ref ? [i] : []));
  if (byName.length === 0) {
    throw protectorError("PROTECTOR_ERR_GUARDIAN_NOT_FOUND", `no guardian '${ref}' in the key protector`, {
      guardians: kp.guardians.map(who),
    });
  }
  if (byName.length > 1) {
    throw protectorError(
      "PROTECTOR_ERR_GUARDIAN_AMBIGUOUS",
      `${byName.length} guardians are named '${ref}'; give a thumbprint instead`,
      { guardians: byName.map((i) => who(kp.guardians[i] as GuardianPublic)) },
    );
  }
  return byName[0] as number;
}

/**
 * Removes a guardian (by name or thumbprint) and rolls the transport key: a revoked guardian
 * that already unwrapped the old key still knows it, so the remaining guardians get a fresh key
 * at the next key generation (and VM secrets sealed under the old key no longer open with the
 * new protector: the host re-seals them, host/vm/rekey.ts).
 */
export function revokeGuardian(
  bytes: Uint8Array,
  guardian: string,
  opts: ChangeGuardiansOptions,
): Uint8Array {
  const kp = parseKeyProtector(bytes);
  requireOwner(kp, opts.owner, opts.memo);
  const idx = findGuardian(kp, guardian);
  if (kp.guardians.length === 1) {
    throw protectorError("PROTECTOR_ERR_LAST_GUARDIAN", `'${guardian}' is the key protector's last guardian`);
  }
  // The old key is unwrapped only to prove this caller may change the protector (the MAC checks).
  const t = unwrapKeyProtector(kp, opts.unwrapWith ?? [opts.owner], opts.memo ? { memo: opts.memo } : {});
  const key = randomBytes(TRANSPORT_KEY_BYTES);
  try {
    const signed = signedGuardianSet(
      {
        protectorId: kp.protectorId,
        generation: nextGeneration(kp.guardianSetGeneration, "guardian set"),
        owner: entry(kp.owner),
        guardians: kp.guardians.filter((_, i) => i !== idx).map(entry),
      },
      opts.owner.signingKey,
    );
    const keyGeneration = nextGeneration(kp.keyGeneration, "transport key");
    return assemble({
      ...signed,
      keyGeneration,
      wraps: kp.guardians
        .filter((_, i) => i !== idx)
        .map((g) => wrapFor(g, key, kp.protectorId, keyGeneration, opts.memo)),
      transportKey: key,
    });
  } finally {
    zeroize(t.key, key);
  }
}

export interface RollResult {
  readonly keyProtector: Uint8Array;
  readonly oldKey: TransportKey;
  readonly newKey: TransportKey;
  /** The VM secrets blob re-encrypted under the new key, when one was given. */
  readonly vmSecrets?: Uint8Array;
}

/**
 * Replaces the transport key (Host Guardian Service key roll). Needs a guardian that can
 * unwrap, not the owner: the guardian set and the owner's signature are kept byte-identical;
 * every guardian gets the new key; the key generation increases. The caller zeroizes both keys.
 */
export function rollTransportKey(
  protector: Uint8Array | KeyProtector,
  guardianWhoCanUnwrap: Guardian | readonly Guardian[],
  opts: { readonly vmSecrets?: Uint8Array; readonly memo?: ProtectorMemo } = {},
): RollResult {
  // A caller that already parsed the protector (the HGS release checks its guardians first)
  // passes the model, so the bytes are decoded once.
  const kp = asParsed(protector);
  const old = unwrapKeyProtector(kp, asList(guardianWhoCanUnwrap), opts.memo ? { memo: opts.memo } : {});
  const oldKey: TransportKey = { key: old.key, protectorId: kp.protectorId, keyGeneration: kp.keyGeneration };
  const keyGeneration = nextGeneration(kp.keyGeneration, "transport key");
  const key = randomBytes(TRANSPORT_KEY_BYTES);
  const newKey: TransportKey = { key, protectorId: kp.protectorId, keyGeneration };
  try {
    // The guardian set goes out as its received bytes (signed by the owner); the value is the
    // parsed model's, not a second decode.
    const guardianSet: GuardianSet = {
      protectorId: kp.protectorId,
      generation: kp.guardianSetGeneration,
      owner: entry(kp.owner),
      guardians: kp.guardians.map(entry),
    };
    const keyProtector = assemble({
      guardianSet: { value: guardianSet, raw: kp.guardianSetRaw },
      signatureAlgorithm: kp.signatureAlgorithm,
      signature: kp.signature,
      keyGeneration,
      wraps: kp.guardians.map((g) => wrapFor(g, key, kp.protectorId, keyGeneration, opts.memo)),
      transportKey: key,
    });
    const vmSecrets = opts.vmSecrets ? reencryptVmSecrets(opts.vmSecrets, oldKey, newKey) : undefined;
    return { keyProtector, oldKey, newKey, ...(vmSecrets ? { vmSecrets } : {}) };
  } catch (e) {
    zeroize(old.key, key);
    throw e;
  }
}

export interface KeyProtectorInfo {
  readonly version: number;
  readonly protectorId: string;
  readonly guardianSetGeneration: number;
  readonly keyGeneration: number;
  readonly owner: GuardianSummary;
  readonly guardians: readonly (GuardianSummary & { readonly wrapScheme: WrapSchemeName })[];
  readonly signatureAlgorithm: SignatureAlgorithmName;
  /** Verdict on the owner's signature; the MAC needs the transport key and is not checked here. */
  readonly ownerSignature: { readonly valid: boolean; readonly error?: string };
}

/** Describes a key protector without any secret: guardians, generations, owner-signature verdict. */
export function inspectKeyProtector(bytes: Uint8Array | KeyProtector): KeyProtectorInfo {
  const kp = asParsed(bytes);
  let ownerSignature: KeyProtectorInfo["ownerSignature"] = { valid: true };
  try {
    verifyOwnerSignature(kp);
  } catch (e) {
    if (!isProtectorError(e)) throw e;
    ownerSignature = { valid: false, error: e.code };
  }
  return {
    version: kp.version,
    protectorId: Buffer.from(kp.protectorId).toString("hex"),
    guardianSetGeneration: kp.guardianSetGeneration,
    keyGeneration: kp.keyGeneration,
    owner: summarizeGuardian(kp.owner),
    guardians: kp.guardians.map((g, i) => ({
      ...summarizeGuardian(g),
      wrapScheme: (kp.wraps[i] as KeyProtector["wraps"][number]).scheme,
    })),
    signatureAlgorithm: kp.signatureAlgorithm,
    ownerSignature,
  };
}

// ---------------------------------------------------------------------------------------------
// Last known good. The host keeps the protector that last unwrapped successfully; a new one
// must descend from it (same protector id and owner, generations never decreasing).

/**
 * A key protector whose protector id is not the VM's: a copy of another VM's protector put in
 * place. Never a reason to fall back to the last known good copy — that would hide the swap.
 */
export function foreignProtector(expected: Uint8Array, got: Uint8Array): ProtectorError {
  const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
  return protectorError(
    "PROTECTOR_ERR_FOREIGN_PROTECTOR",
    `the key protector belongs to another VM: its protector id ${hex(got)} is not this VM's ${hex(expected)}`,
    { expected: hex(expected), got: hex(got) },
  );
}

/**
 * Checks that `candidate` may replace `lastKnownGood`: same protector id and owner, guardian-set
 * and key generations not lower, and not a different protector at the same generations.
 * Throws PROTECTOR_ERR_FOREIGN_PROTECTOR (another VM's protector), PROTECTOR_ERR_OWNER_MISMATCH or
 * PROTECTOR_ERR_ROLLBACK. Signatures are not checked here.
 */
export function checkSuccessor(
  lastKnownGood: Uint8Array | KeyProtector,
  candidate: Uint8Array | KeyProtector,
): void {
  const a = asParsed(lastKnownGood);
  const b = asParsed(candidate);
  if (!bytesEqual(a.protectorId, b.protectorId)) throw foreignProtector(a.protectorId, b.protectorId);
  if (!bytesEqual(a.owner.signingCertificate, b.owner.signingCertificate)) {
    throw protectorError("PROTECTOR_ERR_OWNER_MISMATCH", "the key protector's owner changed", {
      expected: who(a.owner),
      got: who(b.owner),
    });
  }
  const details = {
    lastKnownGood: { guardianSetGeneration: a.guardianSetGeneration, keyGeneration: a.keyGeneration },
    candidate: { guardianSetGeneration: b.guardianSetGeneration, keyGeneration: b.keyGeneration },
  };
  if (b.guardianSetGeneration < a.guardianSetGeneration || b.keyGeneration < a.keyGeneration) {
    throw protectorError(
      "PROTECTOR_ERR_ROLLBACK",
      "the key protector is older than the last known good one",
      details,
    );
  }
  const sameSet = bytesEqual(a.guardianSetRaw, b.guardianSetRaw);
  if (b.guardianSetGeneration === a.guardianSetGeneration && !sameSet) {
    throw protectorError(
      "PROTECTOR_ERR_ROLLBACK",
      "a different guardian set at the same generation (a fork)",
      details,
    );
  }
  if (b.keyGeneration === a.keyGeneration && b.guardianSetGeneration === a.guardianSetGeneration) {
    if (!bytesEqual(a.raw, b.raw)) {
      throw protectorError(
        "PROTECTOR_ERR_ROLLBACK",
        "a different key protector at the same generations (a fork)",
        details,
      );
    }
  }
}

/** The parsed protector, or undefined when the bytes do not parse (a typed protector error). */
function parsedOrUndefined(bytes: Uint8Array | KeyProtector): KeyProtector | undefined {
  try {
    return asParsed(bytes);
  } catch (e) {
    if (isProtectorError(e)) return undefined;
    throw e;
  }
}

/** Failures of the current protector after which the last known good one is used instead. */
const FALL_BACK_ON = new Set<string>([
  "PROTECTOR_ERR_FORMAT",
  "PROTECTOR_ERR_OWNER_SIGNATURE",
  "PROTECTOR_ERR_OWNER_MISMATCH",
  "PROTECTOR_ERR_MAC",
  "PROTECTOR_ERR_UNWRAP",
  "PROTECTOR_ERR_ROLLBACK",
  "PROTECTOR_ERR_CERTIFICATE",
]);

export interface LastKnownGoodResult {
  readonly transportKey: UnwrappedTransportKey;
  readonly used: "current" | "lastKnownGood";
  /** The bytes the host should store as the new last known good. */
  readonly lastKnownGood: Uint8Array;
  /** Why the current protector was not used (when `used` is `lastKnownGood`). */
  readonly currentError?: ProtectorError;
}

/**
 * Unwraps the current protector, falling back to the last known good one when the current is
 * corrupt, altered, or does not descend from it. A current protector that simply does not list
 * this host (PROTECTOR_ERR_NOT_AUTHORIZED) does not fall back: that is a revocation; nor does
 * one of another VM (PROTECTOR_ERR_FOREIGN_PROTECTOR, checked first, before any unwrap): falling
 * back would start the VM while hiding that its protector was swapped.
 */
export function unwrapWithLastKnownGood(
  current: Uint8Array | KeyProtector,
  lastKnownGood: Uint8Array | KeyProtector | undefined,
  localGuardians: readonly Guardian[],
  opts: UnwrapOptions = {},
): LastKnownGoodResult {
  // Each protector is decoded once here and the model passed on (callers may pass models too).
  const good = lastKnownGood && parsedOrUndefined(lastKnownGood); // a corrupt cache is no cache
  const cur = parsedOrUndefined(current);
  if (good && cur && !bytesEqual(good.protectorId, cur.protectorId)) {
    throw foreignProtector(good.protectorId, cur.protectorId);
  }
  try {
    // A current protector that does not decode throws its format error here, as before.
    const transportKey = unwrapKeyProtector(cur ?? current, localGuardians, opts);
    try {
      if (good) checkSuccessor(good, cur ?? current);
    } catch (e) {
      zeroize(transportKey.key);
      throw e;
    }
    return { transportKey, used: "current", lastKnownGood: rawOf(current) };
  } catch (e) {
    if (!good || !isProtectorError(e) || !FALL_BACK_ON.has(e.code)) throw e;
    const transportKey = unwrapKeyProtector(good, localGuardians, opts);
    return { transportKey, used: "lastKnownGood", lastKnownGood: good.raw, currentError: e };
  }
}

/**
 * VM secrets: a small versioned blob, AES-256-GCM (NIST SP 800-38D) under a key derived from
 * the key protector's transport key (HKDF-SHA256, RFC 5869), holding per-VM keys such as the
 * vTPM state key. Rolling the transport key re-encrypts only this blob, never the TPM state.
 * Layout (big-endian; docs/formats/key-protector.md "VM secrets"):
 *
 *   BULWARK_VM_SECRETS := magic "BWVS" u32 | version u16 (= 1) | aead u16 (= 2, AES-256-GCM)
 *                         | protectorId [16] | keyGeneration u32 | nonce [12]
 *                         | ciphertext || tag[16]          (AAD = every byte before it)
 *   plaintext          := u16 count | { u16 len | name (UTF-8) | u16 len | value }[count]
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import {
  constant,
  decode,
  encode,
  fixedBytes,
  list,
  rest,
  sizedBytes,
  struct,
  u16be,
  u32be,
} from "../core/codec.js";
import { decodeAs, protectorError } from "./errors.js";
import { utf8String } from "./format.js";
import { hkdf, zeroize } from "./kdf.js";
import type { TransportKey } from "./transport-key.js";
import { bytesEqual } from "../core/bytes.js";

export const VS_MAGIC = 0x42575653; // "BWVS"
export const VS_VERSION = 1;
const AEAD_AES256GCM = 2; // RFC 9180 §7.3 identifier, reused as a label
const TAG = 16;
export const MAX_VM_SECRETS = 64;
export const MAX_VM_SECRET_BYTES = 4096;
const HEADER_BYTES = 4 + 2 + 2 + 16 + 4 + 12;

/** Well-known secret names (the host may add others). */
export const VM_SECRET = {
  /** Key swtpm encrypts the vTPM state with. */
  vtpmStateKey: "vtpm-state-key",
  /** Input key of saved-state / migration stream encryption (./stream.ts). */
  stateKey: "state-key",
  /** authValue of the version index Bulwark keeps inside the vTPM state (host/vm/vtpm-version.ts). */
  vtpmVersionAuth: "vtpm-version-auth",
  /** The value (u64 BE) that index must hold: an older vTPM state holds less. */
  vtpmVersion: "vtpm-version",
  /** Protector id the current protector replaced (host/vm/keys.ts: a crash mid-replacement). */
  replacedProtectorId: "replaced-protector-id",
  /** Generation (u64 BE) of the one saved state that may be restored (host/vm/saved-state.ts). */
  savedStateGeneration: "saved-state-generation",
} as const;

/** A version kept among the VM secrets: u64 big-endian; absent is undefined. */
export function readVersion(secrets: ReadonlyMap<string, Uint8Array>, name: string): bigint | undefined {
  const v = secrets.get(name);
  if (!v) return undefined;
  if (v.length !== 8)
    throw protectorError("PROTECTOR_ERR_VMSECRETS_FORMAT", `VM secret '${name}' is not a u64`);
  return Buffer.from(v).readBigUInt64BE(0);
}

export function versionBytes(n: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, n, false);
  return b;
}

const Header = struct("BULWARK_VM_SECRETS_HEADER", {
  magic: constant(u32be, VS_MAGIC),
  version: u16be,
  aead: u16be,
  protectorId: fixedBytes(16, "protectorId"),
  keyGeneration: u32be,
  nonce: fixedBytes(12, "nonce"),
});

const Blob = struct("BULWARK_VM_SECRETS", {
  header: Header,
  sealed: rest,
});

const Payload = list(
  u16be,
  MAX_VM_SECRETS,
  struct("BULWARK_VM_SECRET", {
    name: utf8String(64, "name"),
    value: sizedBytes(u16be, MAX_VM_SECRET_BYTES, "value"),
  }),
  "BULWARK_VM_SECRETS_PAYLOAD",
);

function deriveKey(t: TransportKey): Buffer {
  const info = Buffer.alloc(4);
  info.writeUInt32BE(t.keyGeneration);
  return hkdf(
    "sha256",
    t.key,
    t.protectorId,
    Buffer.concat([Buffer.from("bulwark vm-secrets v1\0"), info]),
    32,
  );
}

/** Encrypts `secrets` under the transport key. Names: 1..64 UTF-8 bytes; values up to 4096 bytes. */
export function sealVmSecrets(
  transportKey: TransportKey,
  secrets: ReadonlyMap<string, Uint8Array>,
): Uint8Array {
  if (secrets.size > MAX_VM_SECRETS) {
    throw protectorError("PROTECTOR_ERR_INVALID_ARGUMENT", `at most ${MAX_VM_SECRETS} VM secrets`);
  }
  const entries = [...secrets].map(([name, value]) => {
    if (Buffer.byteLength(name) === 0 || Buffer.byteLength(name) > 64 || value.length > MAX_VM_SECRET_BYTES) {
      throw protectorError(
        "PROTECTOR_ERR_INVALID_ARGUMENT",
        `VM secret names are 1..64 bytes and values at most ${MAX_VM_SECRET_BYTES} bytes`,
      );
    }
    return { name, value };
  });
  const header = encode(Header, {
    magic: VS_MAGIC,
    version: VS_VERSION,
    aead: AEAD_AES256GCM,
    protectorId: transportKey.protectorId,
    keyGeneration: transportKey.keyGeneration,
    nonce: new Uint8Array(randomBytes(12)),
  });
  const plaintext = encode(Payload, entries);
  const key = deriveKey(transportKey);
  try {
    const c = createCipheriv("aes-256-gcm", key, header.subarray(HEADER_BYTES - 12), { authTagLength: TAG });
    c.setAAD(header);
    return Buffer.concat([header, c.update(plaintext), c.final(), c.getAuthTag()]);
  } finally {
    zeroize(key, plaintext);
  }
}

export interface VmSecretsHeader {
  readonly version: number;
  readonly protectorId: Uint8Array;
  readonly keyGeneration: number;
}

function parse(blob: Uint8Array) {
  const b = decodeAs("PROTECTOR_ERR_VMSECRETS_FORMAT", "VM secrets", () => decode(Blob, blob));
  if (b.header.version !== VS_VERSION || b.header.aead !== AEAD_AES256GCM) {
    throw protectorError(
      "PROTECTOR_ERR_VMSECRETS_FORMAT",
      `VM secrets version ${b.header.version} / AEAD ${b.header.aead} is not supported`,
    );
  }
  if (b.sealed.length < TAG || b.sealed.length > MAX_VM_SECRETS * (MAX_VM_SECRET_BYTES + 70) + 2 + TAG) {
    throw protectorError(
      "PROTECTOR_ERR_VMSECRETS_FORMAT",
      `VM secrets ciphertext has ${b.sealed.length} bytes`,
    );
  }
  return b;
}

/** The blob's header (which protector and key generation it is sealed for); needs no key. */
export function vmSecretsHeader(blob: Uint8Array): VmSecretsHeader {
  const b = parse(blob);
  return {
    version: b.header.version,
    protectorId: b.header.protectorId,
    keyGeneration: b.header.keyGeneration,
  };
}

/** Decrypts and authenticates; the returned values are secret copies the caller zeroizes. */
export function openVmSecrets(transportKey: TransportKey, blob: Uint8Array): Map<string, Uint8Array> {
  const b = parse(blob);
  if (
    !bytesEqual(b.header.protectorId, transportKey.protectorId) ||
    b.header.keyGeneration !== transportKey.keyGeneration
  ) {
    throw protectorError(
      "PROTECTOR_ERR_VMSECRETS_BINDING",
      `VM secrets are sealed for protector ${Buffer.from(b.header.protectorId).toString("hex")} key generation ` +
        `${b.header.keyGeneration}, not ${Buffer.from(transportKey.protectorId).toString("hex")} generation ${transportKey.keyGeneration}`,
    );
  }
  const key = deriveKey(transportKey);
  let plaintext: Buffer;
  try {
    const d = createDecipheriv("aes-256-gcm", key, b.header.nonce, { authTagLength: TAG });
    d.setAAD(blob.subarray(0, HEADER_BYTES));
    d.setAuthTag(b.sealed.subarray(b.sealed.length - TAG));
    const body = d.update(b.sealed.subarray(0, b.sealed.length - TAG));
    try {
      d.final();
    } catch (e) {
      zeroize(body);
      throw protectorError(
        "PROTECTOR_ERR_VMSECRETS_AUTH",
        "VM secrets do not authenticate under this transport key (altered, or sealed under another key)",
        {},
        { cause: e },
      );
    }
    plaintext = body;
  } finally {
    zeroize(key);
  }
  try {
    const entries = decodeAs("PROTECTOR_ERR_VMSECRETS_FORMAT", "VM secrets payload", () =>
      decode(Payload, plaintext),
    );
    const out = new Map<string, Uint8Array>();
    for (const e of entries) {
      if (out.has(e.name))
        throw protectorError("PROTECTOR_ERR_VMSECRETS_FORMAT", `VM secret '${e.name}' appears twice`);
      out.set(e.name, new Uint8Array(e.value));
    }
    return out;
  } finally {
    zeroize(plaintext);
  }
}

/** Re-encrypts a VM secrets blob from one transport key to another (after a key roll). */
export function reencryptVmSecrets(blob: Uint8Array, from: TransportKey, to: TransportKey): Uint8Array {
  const secrets = openVmSecrets(from, blob);
  try {
    return sealVmSecrets(to, secrets);
  } finally {
    for (const v of secrets.values()) zeroize(v);
  }
}

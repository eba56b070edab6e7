/**
 * Signed VM settings ("security statement"): what the owner of a key protector decided about the
 * VM's exposure — policy, Secure Boot and its keys, vTPM, encryption — signed with the owner
 * guardian's signing key and bound to one key protector by its protector id, so a statement can
 * neither be edited nor copied from another VM. Format: docs/formats/signed-settings.md.
 *
 *   BULWARK_SIGNED_SETTINGS := magic "BWSS" (u32) | version u16 (= 1) | reserved u16 (= 0)
 *                              | protectorId BYTE[16] | u32 length | payload
 *                              | BULWARK_OWNER_SIGNATURE (as in the key protector)
 *   signed message          := "bulwark signed-settings v1\0" || every byte before the signature
 *
 * The payload is opaque here (the host writes canonical JSON of the settings it enforces); this
 * part only guarantees who signed which bytes for which protector. The key protector is not
 * changed: every existing protector still opens, and a statement follows its protector through
 * guardian grants, revocations and transport-key rolls (all keep the protector id and owner).
 *
 * What verification does not check: that the statement is the newest the owner signed (an older
 * statement of the same protector verifies too; the host binds freshness elsewhere), or anything
 * about the payload's meaning.
 */
import {
  constant,
  decode,
  encode,
  fixedBytes,
  sizedBytes,
  struct,
  u16be,
  u32be,
  withRaw,
} from "../core/codec.js";
import { bytesEqual } from "../core/bytes.js";
import { decodeAs, protectorError } from "./errors.js";
import { OwnerSignature } from "./format.js";
import { checkGuardian, checkGuardianPublic, guardianThumbprint, type Guardian } from "./guardian.js";
import { verifyOwnerSignature, type KeyProtector } from "./key-protector.js";
import { nameOf, SignatureAlgorithm, signMessage, verifyMessage } from "./keys.js";

export const SS_MAGIC = 0x42575353; // "BWSS"
export const SS_VERSION = 1;
/** Settings are a few hundred bytes plus a dbx digest list; 1 MiB bounds a hostile file. */
export const MAX_SETTINGS_PAYLOAD = 1 << 20;
const CONTEXT = Buffer.from("bulwark signed-settings v1\0");

const SignedPart = struct("BULWARK_SIGNED_SETTINGS_BODY", {
  magic: constant(u32be, SS_MAGIC),
  version: constant(u16be, SS_VERSION),
  reserved: constant(u16be, 0),
  protectorId: fixedBytes(16, "protectorId"),
  payload: sizedBytes(u32be, MAX_SETTINGS_PAYLOAD, "payload"),
});

const SignedSettingsFile = struct("BULWARK_SIGNED_SETTINGS", {
  body: withRaw(SignedPart),
  signature: OwnerSignature,
});

export interface SignedSettings {
  /** The exact bytes decoded. */
  readonly raw: Uint8Array;
  readonly protectorId: Uint8Array;
  readonly payload: Uint8Array;
}

/** Decodes (bounded, total): a value or PROTECTOR_ERR_SETTINGS_FORMAT. Nothing is verified. */
export function parseSignedSettings(bytes: Uint8Array): SignedSettings {
  const f = decodeAs("PROTECTOR_ERR_SETTINGS_FORMAT", "signed settings", () =>
    decode(SignedSettingsFile, bytes),
  );
  return { raw: bytes, protectorId: f.body.value.protectorId, payload: f.body.value.payload };
}

/** Signs `payload` for the key protector `kp` with its owner's signing key (the owner must be `owner`). */
export function signSettings(kp: KeyProtector, owner: Guardian, payload: Uint8Array): Uint8Array {
  checkGuardian(owner);
  if (!bytesEqual(kp.owner.signingCertificate, owner.signingCertificate)) {
    throw protectorError(
      "PROTECTOR_ERR_NOT_OWNER",
      `'${owner.name}' (${guardianThumbprint(owner)}) is not the owner of this key protector ('${kp.owner.name}' ${guardianThumbprint(kp.owner)})`,
    );
  }
  const body = encode(SignedPart, {
    magic: SS_MAGIC,
    version: SS_VERSION,
    reserved: 0,
    protectorId: kp.protectorId,
    payload,
  });
  const { algorithm, signature } = signMessage(owner.signingKey, Buffer.concat([CONTEXT, body]));
  const sig = encode(OwnerSignature, { algorithm: SignatureAlgorithm[algorithm], value: signature });
  const out = new Uint8Array(body.length + sig.length);
  out.set(body);
  out.set(sig, body.length);
  return out;
}

/**
 * Verifies a statement against the key protector it claims: the protector's own owner signature
 * first (so the owner key is the one the guardian set names), then the protector id, then the
 * statement's signature by that owner over the received bytes. Returns the signed payload.
 */
export function verifySignedSettings(bytes: Uint8Array, kp: KeyProtector): SignedSettings {
  const f = decodeAs("PROTECTOR_ERR_SETTINGS_FORMAT", "signed settings", () =>
    decode(SignedSettingsFile, bytes),
  );
  verifyOwnerSignature(kp);
  const s = f.body.value;
  if (!bytesEqual(s.protectorId, kp.protectorId)) {
    throw protectorError(
      "PROTECTOR_ERR_SETTINGS_PROTECTOR",
      "the signed settings belong to another key protector (protector id differs)",
      {
        expected: Buffer.from(kp.protectorId).toString("hex"),
        got: Buffer.from(s.protectorId).toString("hex"),
      },
    );
  }
  const algorithm = nameOf(SignatureAlgorithm, f.signature.algorithm);
  const owner = checkGuardianPublic(kp.owner);
  if (
    !algorithm ||
    !verifyMessage(
      owner.signing.publicKey,
      algorithm,
      Buffer.concat([CONTEXT, f.body.raw]),
      f.signature.value,
    )
  ) {
    throw protectorError(
      "PROTECTOR_ERR_SETTINGS_SIGNATURE",
      `the signed settings do not verify under the key protector's owner '${kp.owner.name}' (${guardianThumbprint(kp.owner)})`,
      { owner: { name: kp.owner.name, thumbprint: guardianThumbprint(kp.owner) } },
    );
  }
  return { raw: bytes, protectorId: s.protectorId, payload: s.payload };
}

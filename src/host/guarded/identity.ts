/**
 * The guarded host's identity, created on first need and kept 0600 under `<state>/host/`:
 * - `host-key.pem`: the host key (host-key attestation mode; ECDSA P-256 or RSA-3072), whose
 *   public half the HGS administrator registers (`bulwark hgs host add-key`);
 * - `key-release-key.pem`: the key-release key (ECDSA P-256) that health certificates are bound
 *   to and that HGS encrypts released VM keys to.
 * Private keys never leave these files except as KeyObjects in memory.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import path from "node:path";
import { keyId } from "../../attest/host-key.js";
import { writeFileAtomic } from "../../io/atomic.js";
import { hostDir } from "./config.js";
import { hostGuardError } from "./errors.js";

export type HostKeyType = "p256" | "rsa-3072";
export const HOST_KEY_TYPES: readonly HostKeyType[] = ["p256", "rsa-3072"];

export function hostKeyPath(stateDir: string): string {
  return path.join(hostDir(stateDir), "host-key.pem");
}

export function keyReleaseKeyPath(stateDir: string): string {
  return path.join(hostDir(stateDir), "key-release-key.pem");
}

function generate(type: HostKeyType): KeyObject {
  return type === "p256"
    ? generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey
    : generateKeyPairSync("rsa", { modulusLength: 3072 }).privateKey;
}

async function loadOrCreate(file: string, type: HostKeyType, what: string): Promise<KeyObject> {
  let pem: string | undefined;
  try {
    pem = await readFile(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  if (pem !== undefined) {
    try {
      return createPrivateKey(pem);
    } catch (e) {
      throw hostGuardError(
        "HOSTGUARD_ERR_IDENTITY",
        `the ${what} in ${file} is not a private key`,
        { file },
        { cause: e },
      );
    }
  }
  const key = generate(type);
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeFileAtomic(file, key.export({ type: "pkcs8", format: "pem" }), 0o600);
  return key;
}

export async function hasHostKey(stateDir: string): Promise<boolean> {
  try {
    await readFile(hostKeyPath(stateDir));
    return true;
  } catch {
    return false;
  }
}

/** The host key (created on first need with `type`; an existing key keeps its type). */
export function hostKey(stateDir: string, type: HostKeyType = "p256"): Promise<KeyObject> {
  return loadOrCreate(hostKeyPath(stateDir), type, "host key");
}

export function keyReleaseKey(stateDir: string): Promise<KeyObject> {
  return loadOrCreate(keyReleaseKeyPath(stateDir), "p256", "key-release key");
}

/** The host key's public half (PEM, SPKI) and its HGS host id (SHA-256 of the SPKI DER, hex). */
export async function hostKeyPublic(
  stateDir: string,
  type?: HostKeyType,
): Promise<{ pem: string; hostId: string }> {
  const k = await hostKey(stateDir, type);
  const pub = createPublicKey(k);
  return { pem: pub.export({ type: "spki", format: "pem" }).toString(), hostId: keyId(pub) };
}

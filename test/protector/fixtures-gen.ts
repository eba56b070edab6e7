/**
 * Writes the key-protector golden fixtures under test/fixtures/key-protector/<name>/ (see the
 * README there). Each fixture is written ONCE, by the Bulwark of its time, and committed: the
 * files are byte-exact records of that code's output, and fixtures.test.ts opens every one of
 * them with today's code. Re-running this for an existing name would only replace a record with
 * today's output, which proves nothing; the script refuses to overwrite.
 *
 *   node dist/test/protector/fixtures-gen.js NAME
 *
 * Names: v1-p256, v1-p384, v1-hgs-release (written by the version-1-only code before the
 * X25519 suite existed), v2-x25519 (a version-2 protector and release, guardians with the
 * default X25519 encryption keys; same recipe as v1-hgs-release).
 */
import { createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { keysContext, wrapKeys } from "../../src/attest/release.js";
import {
  createGuardian,
  exportGuardianPem,
  guardianThumbprint,
  type CreateGuardianOptions,
  type Guardian,
} from "../../src/protector/guardian.js";
import { createKeyProtector, rollTransportKey } from "../../src/protector/key-protector.js";
import { repoPath } from "../helpers/paths.js";

const name = process.argv[2] ?? "";
const dir = repoPath("test/fixtures/key-protector", name);
if (existsSync(dir)) throw new Error(`${dir} exists: fixtures are written once`);

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const files = new Map<string, string | Uint8Array>();
const who = (g: Guardian) => ({ name: g.name, thumbprint: guardianThumbprint(g) });

function guardian(file: string, gname: string, opts: CreateGuardianOptions): Guardian {
  const g = createGuardian(gname, opts);
  files.set(file, exportGuardianPem(g));
  return g;
}

function protectorWith(owner: Guardian, others: Guardian[]) {
  const { keyProtector, transportKey } = createKeyProtector({ owner, guardians: others });
  files.set("key-protector.bin", keyProtector);
  return {
    keyProtector,
    expected: {
      protectorId: hex(transportKey.protectorId),
      keyGeneration: transportKey.keyGeneration,
      guardianSetGeneration: 1,
      owner: who(owner),
      guardians: [owner, ...others].map(who),
      transportKey: hex(transportKey.key),
    },
  };
}

let expected: Record<string, unknown>;
switch (name) {
  case "v1-p256": {
    const owner = guardian("owner.guardian.pem", "FixtureOwner", { signingKeyType: "p256" });
    const host = guardian("host.guardian.pem", "FixtureHost", { signingKeyType: "p256" });
    expected = protectorWith(owner, [host]).expected;
    break;
  }
  case "v1-p384": {
    const owner = guardian("owner.guardian.pem", "FixtureOwner", { signingKeyType: "p384" });
    const host = guardian("host.guardian.pem", "FixtureHost", { signingKeyType: "p384" });
    expected = protectorWith(owner, [host]).expected;
    break;
  }
  case "v1-hgs-release":
  case "v2-x25519": {
    // What an HGS key release returns: the protector rolled by the HGS guardian (signing key
    // P-256 as `hgs init` makes it; encryption key P-256 before version 2, X25519 by default
    // since) and both transport keys wrapped to the host's key-release key.
    const owner = guardian("owner.guardian.pem", "FixtureOwner", { signingKeyType: "p256" });
    const hgs = guardian("hgs.guardian.pem", "HGS", { signingKeyType: "p256" });
    const created = protectorWith(owner, [hgs]);
    const roll = rollTransportKey(created.keyProtector, hgs);
    const krk: KeyObject = generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey;
    const context = keysContext(
      roll.oldKey.protectorId,
      roll.oldKey.keyGeneration,
      roll.newKey.keyGeneration,
      roll.keyProtector,
    );
    const keys = wrapKeys(createPublicKey(krk), roll.oldKey.key, roll.newKey.key, context);
    files.set("key-protector.bin", created.keyProtector);
    files.set("rolled-key-protector.bin", roll.keyProtector);
    files.set("key-release-key.pem", krk.export({ type: "pkcs8", format: "pem" }).toString());
    files.set("release-keys.json", `${JSON.stringify(keys, null, 2)}\n`);
    expected = {
      ...created.expected,
      rolled: {
        keyGeneration: roll.newKey.keyGeneration,
        transportKey: hex(roll.newKey.key),
        keysContext: hex(context),
      },
    };
    break;
  }
  default:
    throw new Error(`unknown fixture name '${name}'`);
}

mkdirSync(dir, { recursive: true });
for (const [f, content] of files) writeFileSync(path.join(dir, f), content);
writeFileSync(path.join(dir, "expected.json"), `${JSON.stringify(expected, null, 2)}\n`);
process.stdout.write(`wrote ${dir}\n`);

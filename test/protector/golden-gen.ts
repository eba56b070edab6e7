/**
 * Writes a golden set of version-1 files to test/vectors/protector/golden/<dir>: two test-only
 * guardians (PEM, private), a key protector, a VM secrets blob and a state stream, plus
 * expected.json. Run once per format version: node dist/test/protector/golden-gen.js v1
 * golden.test.ts then checks every such folder still decodes, unwraps and decrypts, so a later
 * change cannot silently break files written by an earlier Bulwark.
 */
import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { createGuardian, exportGuardianPem, guardianThumbprint } from "../../src/protector/guardian.js";
import { createKeyProtector, grantGuardian, rollTransportKey } from "../../src/protector/key-protector.js";
import { encryptState } from "../../src/protector/stream.js";
import { openVmSecrets, sealVmSecrets, VM_SECRET } from "../../src/protector/vm-secrets.js";
import { repoPath } from "../helpers/paths.js";

export function goldenPlaintext(n: number): Buffer {
  const out: Buffer[] = [];
  for (let i = 0; out.length * 32 < n; i++)
    out.push(createHash("sha256").update(`bulwark golden ${i}`).digest());
  return Buffer.concat(out).subarray(0, n);
}

const dir = repoPath("test/vectors/protector/golden", process.argv[2] ?? "v1");
mkdirSync(dir, { recursive: true });
const owner = createGuardian("GoldenOwner", { signingKeyType: "p256", encryptionKeyType: "p256" });
const host = createGuardian("UntrustedGuardian", {
  signingKeyType: "rsa-3072",
  encryptionKeyType: "rsa-3072",
  host: "golden",
});
const hgs = createGuardian("GoldenHGS", { signingKeyType: "p384" });
const created = createKeyProtector({ owner, guardians: [host] });
const granted = grantGuardian(created.keyProtector, hgs, { owner });
const stateKey = createHash("sha256").update("golden state key").digest();
const secrets0 = sealVmSecrets(
  created.transportKey,
  new Map([
    [VM_SECRET.stateKey, stateKey],
    [VM_SECRET.vtpmStateKey, createHash("sha256").update("golden vtpm key").digest()],
  ]),
);
const rolled = rollTransportKey(granted, hgs, { vmSecrets: secrets0 });
const vmSecrets = rolled.vmSecrets as Uint8Array;
const plaintext = goldenPlaintext(10_000);
const stream = encryptState(
  openVmSecrets(rolled.newKey, vmSecrets).get(VM_SECRET.stateKey) as Uint8Array,
  plaintext,
  {
    chunkSize: 4096,
  },
);

writeFileSync(path.join(dir, "owner.guardian.pem"), exportGuardianPem(owner));
writeFileSync(path.join(dir, "host.guardian.pem"), exportGuardianPem(host, { passphrase: "golden" }));
writeFileSync(path.join(dir, "hgs.guardian.pem"), exportGuardianPem(hgs));
writeFileSync(path.join(dir, "key-protector.bin"), rolled.keyProtector);
writeFileSync(path.join(dir, "vm-secrets.bin"), vmSecrets);
writeFileSync(path.join(dir, "state-stream.bin"), stream);
writeFileSync(
  path.join(dir, "expected.json"),
  `${JSON.stringify(
    {
      protectorId: Buffer.from(rolled.newKey.protectorId).toString("hex"),
      guardianSetGeneration: 2,
      keyGeneration: 2,
      owner: { name: owner.name, thumbprint: guardianThumbprint(owner) },
      guardians: [owner, host, hgs].map((g) => ({ name: g.name, thumbprint: guardianThumbprint(g) })),
      hostPassphrase: "golden",
      secrets: [VM_SECRET.stateKey, VM_SECRET.vtpmStateKey],
      stateKeySha256: createHash("sha256").update(stateKey).digest("hex"),
      streamPlaintextLength: plaintext.length,
      streamPlaintextSha256: createHash("sha256").update(plaintext).digest("hex"),
    },
    null,
    2,
  )}\n`,
);
process.stdout.write(`wrote ${dir}\n`);

/**
 * X25519 seals under garbage-collection pressure do not hang. Node 20 takes a key's lock while it
 * exports the key as JWK and allocates inside it; a collection that frees the job which generated
 * that key takes the same lock, and the process waits on itself forever. `hgs serve` hung that way
 * under a release load while HPKE encap made its ephemeral key with generateKeyPairSync and read
 * it back through a JWK export. The loop runs in a child with a one-megabyte young generation
 * (a collection every few hundred seals), bounded by a timeout: the old code hung within 20,000 in each of three runs.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";

const hpke = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../src/protector/hpke.js");
const keys = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../src/protector/keys.js");

const child = `
const { setupBaseS, setupBaseR, HPKE_X25519_SHA256_AES256GCM: suite } = await import(${JSON.stringify(hpke)});
const { generateGuardianKeyPair } = await import(${JSON.stringify(keys)});
const info = Buffer.from("gc");
const r = generateGuardianKeyPair("x25519");
const raw = Buffer.from(r.publicKey.export({ format: "jwk" }).x, "base64url");
let junk = [];
for (let i = 0; i < 20000; i++) {
  const s = setupBaseS(suite, raw, info);
  if (i % 1000 === 0) {
    const o = setupBaseR(suite, s.enc, r.privateKey, info);
    if (!o.key.equals(s.key)) throw new Error("keys differ");
    generateGuardianKeyPair("x25519");
  }
  junk.push("x".repeat(64) + i);
  if (junk.length > 500) junk = [];
}
process.stdout.write("done");
`;

test("20,000 X25519 seals with a collection every few hundred finish (no lock held across a GC)", () => {
  const r = spawnSync(process.execPath, ["--max-semi-space-size=1", "--input-type=module", "-e", child], {
    encoding: "utf8",
    timeout: 90_000,
    killSignal: "SIGKILL",
  });
  assert.equal(r.signal, null, `the child hung and was killed (${r.signal})`);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, "done");
});

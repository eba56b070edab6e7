/**
 * Proof against the real world: tpm2-tools and our client/verifier on one real swtpm.
 * - tpm2_quote quotes verify with ours; tampering is refused with a precise finding.
 * - our quotes verify with tpm2_checkquote.
 * - tpm2_makecredential blobs activate through our client; ours activate with
 *   tpm2_activatecredential (RSA and ECC EKs).
 * - an object we seal to a PCR policy unseals with tpm2_unseal, and no longer after an extend.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { encode, decode } from "../../src/core/codec.js";
import { hash, TPM_ALG } from "../../src/tpm/alg.js";
import { TPM_RH, WELL_KNOWN } from "../../src/tpm/constants.js";
import { hierarchyRef, type KeyRef } from "../../src/tpm/client.js";
import { readCredentialFile, readPcrFile, writeCredentialFile, writePcrFile } from "../../src/tpm/files.js";
import { objectName } from "../../src/tpm/names.js";
import { toHex } from "../../src/core/bytes.js";
import { pcrDigest, pcrSelection, parsePcrSpec, pcrValues } from "../../src/tpm/pcr.js";
import { hashByName } from "../../src/tpm/alg.js";
import { emptyPolicy, policyPcr } from "../../src/tpm/policy.js";
import { TPM2B_PRIVATE, TPM2B_PUBLIC_RAW, TPMT_SIGNATURE } from "../../src/tpm/structures.js";
import {
  akTemplateEccP256,
  akTemplateRsa2048,
  ekTemplateEccP256,
  sealedObjectTemplate,
  srkTemplateRsa2048,
} from "../../src/tpm/templates.js";
import { makeCredential } from "../../src/tpm/verify/credential.js";
import { loadPublicKey } from "../../src/tpm/verify/keys.js";
import { verifyQuote } from "../../src/tpm/verify/quote.js";
import { startSwtpm, type Swtpm } from "../helpers/tpm-swtpm.js";

let sw: Swtpm;
let dir: string;
let srk: KeyRef;
const SRK = 0x81000003;
const f = (name: string): string => path.join(dir, name);

before(async () => {
  sw = await startSwtpm({ manufacture: true });
  dir = mkdtempSync(path.join(os.tmpdir(), "bulwark-tpm-interop-"));
  const t = await sw.tpm.createPrimary(TPM_RH.OWNER, srkTemplateRsa2048());
  await sw.tpm.evictControl(hierarchyRef(TPM_RH.OWNER), t, SRK);
  await sw.tpm.flushContext(t.handle);
  srk = await sw.tpm.readPublic(SRK);
});
after(async () => {
  await sw?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const flushTransient = () => sw.tool("tpm2_flushcontext", ["-t"]);

for (const [label, alg, scheme] of [
  ["RSA-2048 RSASSA", "rsa", "rsassa"],
  ["RSA-2048 RSAPSS", "rsa", "rsapss"],
  ["ECC P-256 ECDSA", "ecc", "ecdsa"],
] as const) {
  test(`tpm2_quote (${label}) verifies with ours; a changed byte, nonce or PCR value is refused precisely`, async () => {
    const p = `q-${scheme}`;
    await sw.tool("tpm2_createek", ["-c", f(`${p}-ek.ctx`), "-G", "rsa", "-u", f(`${p}-ek.pub`)]);
    await flushTransient();
    await sw.tool("tpm2_createak", [
      "-C",
      f(`${p}-ek.ctx`),
      "-c",
      f(`${p}-ak.ctx`),
      "-G",
      alg,
      "-g",
      "sha256",
      "-s",
      scheme,
      "-u",
      f(`${p}-ak.pub`),
      "-n",
      f(`${p}-ak.name`),
    ]);
    await flushTransient();
    await sw.tool("tpm2_flushcontext", ["-s"]);
    const nonce = randomBytes(20);
    await sw.tool("tpm2_quote", [
      "-c",
      f(`${p}-ak.ctx`),
      "-l",
      "sha256:0,1,2,16+sha1:0",
      "-q",
      nonce.toString("hex"),
      "-m",
      f(`${p}.msg`),
      "-s",
      f(`${p}.sig`),
      "-o",
      f(`${p}.pcrs`),
      "-g",
      "sha256",
      "--scheme",
      scheme,
    ]);
    await flushTransient();

    const ak = loadPublicKey(readFileSync(f(`${p}-ak.pub`)));
    assert.equal(ak.format, "TPM2B_PUBLIC");
    assert.ok(ak.public);
    assert.deepEqual(toHex(objectName(ak.public)), readFileSync(f(`${p}-ak.name`)).toString("hex"));
    const quoted = new Uint8Array(readFileSync(f(`${p}.msg`)));
    const signature = new Uint8Array(readFileSync(f(`${p}.sig`)));
    const pcrs = readPcrFile(new Uint8Array(readFileSync(f(`${p}.pcrs`))));
    const expectedSelection = parsePcrSpec("sha256:0,1,2,16+sha1:0", hashByName);
    const good = verifyQuote({
      ak: ak.public,
      quoted,
      signature,
      nonce,
      pcrs: pcrs.values,
      expectedSelection,
    });
    assert.equal(good.ok, true, JSON.stringify(good.findings));
    assert.deepEqual(good.findings, []);
    for (const id of [
      "quote.signature",
      "quote.magic",
      "quote.type",
      "quote.nonce",
      "quote.pcrSelection",
      "quote.pcrDigest",
      "ak.attributes.fixedTPM",
    ]) {
      assert.ok(good.passed.includes(id), id);
    }
    // Re-encoding what we decoded reproduces tpm2-tools' bytes.
    assert.deepEqual(encode(TPMT_SIGNATURE, decode(TPMT_SIGNATURE, signature)), signature);
    assert.deepEqual(writePcrFile(pcrs.selection, pcrs.values), new Uint8Array(readFileSync(f(`${p}.pcrs`))));

    const ids = (v: { findings: readonly { id: string; severity: string }[] }) =>
      v.findings.filter((x) => x.severity === "error").map((x) => x.id);
    const flipped = quoted.slice();
    flipped[flipped.length - 1]! ^= 1;
    const bad1 = verifyQuote({
      ak: ak.public,
      quoted: flipped,
      signature,
      nonce,
      pcrs: pcrs.values,
      expectedSelection,
    });
    assert.equal(bad1.ok, false);
    assert.deepEqual(ids(bad1), ["quote.signature", "quote.pcrDigest"]);
    const bad2 = verifyQuote({
      ak: ak.public,
      quoted,
      signature,
      nonce: randomBytes(20),
      pcrs: pcrs.values,
      expectedSelection,
    });
    assert.deepEqual(ids(bad2), ["quote.nonce"]);
    const otherValues = pcrValues(
      [...pcrs.values].flatMap(([alg, bank]) =>
        [...bank].map(([i, v]): [number, number, Uint8Array] => [
          alg,
          i,
          i === 16 && alg === TPM_ALG.SHA256 ? hash(TPM_ALG.SHA256, v) : v,
        ]),
      ),
    );
    const bad3 = verifyQuote({
      ak: ak.public,
      quoted,
      signature,
      nonce,
      pcrs: otherValues,
      expectedSelection,
    });
    assert.deepEqual(ids(bad3), ["quote.pcrDigest"]);
    const bad4 = verifyQuote({
      ak: ak.public,
      quoted,
      signature,
      nonce,
      pcrs: pcrs.values,
      expectedSelection: [pcrSelection(TPM_ALG.SHA256, [0, 1, 2, 7])],
    });
    assert.deepEqual(ids(bad4), ["quote.pcrSelection"]);
    const other = loadPublicKey(readFileSync(f(`${p}-ek.pub`)));
    const bad5 = verifyQuote({ ak: other.key, quoted, signature, nonce, pcrs: pcrs.values });
    assert.deepEqual(ids(bad5), ["quote.signature"]);
  });
}

for (const [label, template] of [
  ["RSA-2048", akTemplateRsa2048],
  ["ECC P-256", akTemplateEccP256],
] as const) {
  test(`our quote (${label} AK) verifies with tpm2_checkquote and with ours`, async () => {
    const obj = await sw.tpm.create(srk, template());
    const ak = await sw.tpm.load(srk, obj);
    const sel = parsePcrSpec("sha256:0,1,2,3,4,5,6,7,8,9,16", hashByName);
    const nonce = randomBytes(16);
    let q;
    try {
      q = await sw.tpm.quote(ak, nonce, sel);
    } finally {
      await sw.tpm.flushContext(ak.handle);
    }
    const { values } = await sw.tpm.pcrRead(sel);
    const p = `ours-${label.replace(/\W/g, "")}`;
    writeFileSync(f(`${p}-ak.pub`), encode(TPM2B_PUBLIC_RAW, obj.public));
    writeFileSync(f(`${p}.msg`), q.quoted);
    writeFileSync(f(`${p}.sig`), encode(TPMT_SIGNATURE, q.signature));
    writeFileSync(f(`${p}.pcrs`), writePcrFile(sel, values));
    const r = await sw.tool("tpm2_checkquote", [
      "-u",
      f(`${p}-ak.pub`),
      "-m",
      f(`${p}.msg`),
      "-s",
      f(`${p}.sig`),
      "-f",
      f(`${p}.pcrs`),
      "-g",
      "sha256",
      "-q",
      nonce.toString("hex"),
    ]);
    assert.match(r.stdout, /sha256/);
    await assert.rejects(
      sw.tool("tpm2_checkquote", [
        "-u",
        f(`${p}-ak.pub`),
        "-m",
        f(`${p}.msg`),
        "-s",
        f(`${p}.sig`),
        "-f",
        f(`${p}.pcrs`),
        "-g",
        "sha256",
        "-q",
        "00112233",
      ]),
      /failed/,
    );
    const v = verifyQuote({
      ak: obj.public,
      quoted: q.quoted,
      signature: q.signature,
      nonce,
      pcrs: values,
      expectedSelection: sel,
    });
    assert.equal(v.ok, true, JSON.stringify(v.findings));
  });
}

/** Loads an AK under the SRK and persists it so tpm2-tools can name it by handle. */
async function persistentAk(handle: number): Promise<KeyRef> {
  const obj = await sw.tpm.create(srk, akTemplateRsa2048());
  const t = await sw.tpm.load(srk, obj);
  await sw.tpm.evictControl(hierarchyRef(TPM_RH.OWNER), t, handle);
  await sw.tpm.flushContext(t.handle);
  return sw.tpm.readPublic(handle);
}

test("tpm2_makecredential blobs activate through our client (RSA EK and ECC EK)", async () => {
  const ak = await persistentAk(0x81000010);
  const rsaEk = await sw.tpm.readPublic(WELL_KNOWN.EK_RSA_PERSISTENT);
  const eccT = await sw.tpm.createPrimary(TPM_RH.ENDORSEMENT, ekTemplateEccP256());
  await sw.tpm.evictControl(hierarchyRef(TPM_RH.OWNER), eccT, 0x81010020);
  await sw.tpm.flushContext(eccT.handle);
  const eccEk = await sw.tpm.readPublic(0x81010020);
  for (const [label, ek] of [
    ["rsa", rsaEk],
    ["ecc", eccEk],
  ] as const) {
    const secret = randomBytes(32);
    writeFileSync(f(`mc-${label}.secret`), secret);
    writeFileSync(f(`mc-${label}-ek.pub`), encode(TPM2B_PUBLIC_RAW, ek.public));
    await sw.tool("tpm2_makecredential", [
      "-T",
      "none",
      "-u",
      f(`mc-${label}-ek.pub`),
      "-s",
      f(`mc-${label}.secret`),
      "-n",
      toHex(ak.name),
      "-o",
      f(`mc-${label}.cred`),
    ]);
    const cred = readCredentialFile(new Uint8Array(readFileSync(f(`mc-${label}.cred`))));
    const session = await sw.tpm.ekPolicySession();
    const got = await sw.tpm.activateCredential(ak, ek, cred.credentialBlob, cred.secret, { ek: session });
    await sw.tpm.flushContext(session.handle);
    assert.deepEqual(Buffer.from(got), secret, label);
    // A blob made for another Name does not activate: its integrity HMAC covers the AK's name.
    const wrong = makeCredential(ek.public.value, objectName(srk.public), secret);
    const s2 = await sw.tpm.ekPolicySession();
    await assert.rejects(sw.tpm.activateCredential(ak, ek, wrong.credentialBlob, wrong.secret, { ek: s2 }), {
      code: "TPM_ERR_INTEGRITY",
    });
    await sw.tpm.flushContext(s2.handle).catch(() => undefined);
  }
});

test("our MakeCredential blobs activate with tpm2_activatecredential (RSA EK and ECC EK)", async () => {
  const ak = await sw.tpm.readPublic(0x81000010);
  for (const [label, ekHandle] of [
    ["rsa", WELL_KNOWN.EK_RSA_PERSISTENT],
    ["ecc", 0x81010020],
  ] as const) {
    const ek = await sw.tpm.readPublic(ekHandle);
    const secret = randomBytes(24);
    writeFileSync(
      f(`ac-${label}.cred`),
      writeCredentialFile(makeCredential(ek.public.value, ak.name, secret)),
    );
    await sw.transport.close();
    await sw.tool("tpm2_startauthsession", ["--policy-session", "-S", f(`ac-${label}.session`)]);
    await sw.tool("tpm2_policysecret", ["-S", f(`ac-${label}.session`), "-c", "e"]);
    await sw.tool("tpm2_activatecredential", [
      "-c",
      `0x${ak.handle.toString(16)}`,
      "-C",
      `0x${ekHandle.toString(16)}`,
      "-i",
      f(`ac-${label}.cred`),
      "-o",
      f(`ac-${label}.out`),
      "-P",
      `session:${f(`ac-${label}.session`)}`,
    ]);
    await sw.tool("tpm2_flushcontext", [f(`ac-${label}.session`)]).catch(() => undefined);
    await sw.tool("tpm2_flushcontext", ["-s"]).catch(() => undefined);
    assert.deepEqual(readFileSync(f(`ac-${label}.out`)), secret, label);
    // Our own client activates our blob too.
    const s = await sw.tpm.ekPolicySession();
    const cred = makeCredential(ek.public.value, ak.name, secret);
    assert.deepEqual(
      Buffer.from(await sw.tpm.activateCredential(ak, ek, cred.credentialBlob, cred.secret, { ek: s })),
      secret,
    );
    await sw.tpm.flushContext(s.handle);
  }
});

test("an object sealed by us to a PCR policy unseals with tpm2_unseal, and not after the PCR is extended", async () => {
  const sel = [pcrSelection(TPM_ALG.SHA256, [0, 16])];
  const { values } = await sw.tpm.pcrRead(sel);
  const policy = policyPcr(
    TPM_ALG.SHA256,
    emptyPolicy(TPM_ALG.SHA256),
    sel,
    pcrDigest(TPM_ALG.SHA256, sel, values),
  );
  const secret = new TextEncoder().encode("vTPM state key");
  const sealed = await sw.tpm.create(srk, sealedObjectTemplate(policy), { data: secret });
  writeFileSync(f("seal.pub"), encode(TPM2B_PUBLIC_RAW, sealed.public));
  writeFileSync(f("seal.priv"), encode(TPM2B_PRIVATE, sealed.private));

  await sw.tool("tpm2_load", [
    "-C",
    `0x${SRK.toString(16)}`,
    "-u",
    f("seal.pub"),
    "-r",
    f("seal.priv"),
    "-c",
    f("seal.ctx"),
  ]);
  await flushTransient();
  await sw.tool("tpm2_unseal", ["-c", f("seal.ctx"), "-p", "pcr:sha256:0,16", "-o", f("unsealed.bin")]);
  await flushTransient();
  assert.deepEqual(new Uint8Array(readFileSync(f("unsealed.bin"))), secret);

  // Our client unseals with a policy session too.
  const loaded = await sw.tpm.load(srk, sealed);
  const s = await sw.tpm.startAuthSession("policy");
  await sw.tpm.policyPcr(s, sel);
  assert.deepEqual(await sw.tpm.unseal(loaded, s), secret);
  await sw.tpm.flushContext(s.handle);

  await sw.tpm.pcrExtend(16, [
    { hashAlg: TPM_ALG.SHA256, digest: hash(TPM_ALG.SHA256, new TextEncoder().encode("tamper")) },
  ]);
  const s2 = await sw.tpm.startAuthSession("policy");
  await sw.tpm.policyPcr(s2, sel);
  await assert.rejects(
    sw.tpm.unseal(loaded, s2),
    (e: unknown) => (e as { details: { name: string } }).details.name === "TPM_RC_POLICY_FAIL",
  );
  await sw.tpm.flushContext(s2.handle).catch(() => undefined);
  await sw.tpm.flushContext(loaded.handle);

  await sw.tool("tpm2_load", [
    "-C",
    `0x${SRK.toString(16)}`,
    "-u",
    f("seal.pub"),
    "-r",
    f("seal.priv"),
    "-c",
    f("seal2.ctx"),
  ]);
  await flushTransient();
  await assert.rejects(
    sw.tool("tpm2_unseal", ["-c", f("seal2.ctx"), "-p", "pcr:sha256:0,16", "-o", f("unsealed2.bin")]),
    /failed/,
  );
  await flushTransient();
  await sw.tool("tpm2_flushcontext", ["-s"]).catch(() => undefined);
});

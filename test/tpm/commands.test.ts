/**
 * Every TPM command of the client against a real swtpm (started and killed here).
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate, createHash } from "node:crypto";
import { hash, TPM_ALG } from "../../src/tpm/alg.js";
import {
  TPM_CAP,
  TPM_HT,
  TPM_PT,
  TPM_RH,
  TPM_SU,
  TPMA_NV,
  WELL_KNOWN,
  nvAttributes,
} from "../../src/tpm/constants.js";
import { hierarchyRef } from "../../src/tpm/client.js";
import { objectName, nvName } from "../../src/tpm/names.js";
import { bytesEqual } from "../../src/core/bytes.js";
import { extendPcr, pcrDigest, pcrSelection } from "../../src/tpm/pcr.js";
import {
  policyPcr,
  policySecret,
  emptyPolicy,
  policyCommandCode,
  policyAuthValue,
} from "../../src/tpm/policy.js";
import {
  checkActivatedSecret,
  credentialChallenge,
  makeCredential,
} from "../../src/tpm/verify/credential.js";
import { HmacSession, PasswordSession } from "../../src/tpm/sessions.js";
import {
  akTemplateEccP256,
  ekTemplateEccP256,
  ekTemplateRsa2048,
  sealedObjectTemplate,
  srkTemplateRsa2048,
} from "../../src/tpm/templates.js";
import { publicKeyFromTpm } from "../../src/tpm/verify/keys.js";
import { isTpmError } from "../../src/tpm/errors.js";
import { readEkCertificates } from "../../src/tpm/ek.js";
import { checkEkPublic } from "../../src/tpm/verify/ak.js";
import { startSwtpm, type Swtpm } from "../helpers/tpm-swtpm.js";

let sw: Swtpm;
before(async () => {
  sw = await startSwtpm({ manufacture: true });
});
after(async () => {
  await sw?.stop();
});

test("Startup is refused when already started, with a decoded TPM_RC_INITIALIZE", async () => {
  await assert.rejects(sw.tpm.startup(TPM_SU.CLEAR), (e: unknown) => {
    assert.ok(isTpmError(e));
    assert.equal(e.code, "TPM_ERR_RESPONSE_CODE");
    assert.equal(e.details["name"], "TPM_RC_INITIALIZE");
    return true;
  });
});

test("SelfTest, GetRandom, GetCapability (properties, banks, handles)", async () => {
  await sw.tpm.selfTest(true);
  const r = await sw.tpm.getRandom(100);
  assert.equal(r.length, 100);
  assert.notDeepEqual(r, new Uint8Array(100));
  const props = await sw.tpm.properties();
  assert.equal(props.get(TPM_PT.FAMILY_INDICATOR), 0x322e3000); // "2.0\0"
  assert.ok((props.get(TPM_PT.PCR_COUNT) ?? 0) >= 24);
  const banks = await sw.tpm.pcrBanks();
  const active = banks.filter((b) => b.pcrSelect.some((x) => x !== 0)).map((b) => b.hash);
  assert.deepEqual(active.sort(), [TPM_ALG.SHA1, TPM_ALG.SHA256].sort());
  const persistent = await sw.tpm.handles(TPM_HT.PERSISTENT);
  assert.ok(
    persistent.includes(WELL_KNOWN.EK_RSA_PERSISTENT),
    persistent.map((h) => h.toString(16)).join(","),
  );
  const nv = await sw.tpm.handles(TPM_HT.NV_INDEX);
  assert.ok(nv.includes(WELL_KNOWN.EK_CERT_RSA2048));
  const algs = await sw.tpm.getCapability(TPM_CAP.ALGS, 0, 64);
  assert.ok((algs.capabilityData.data as { alg: number }[]).some((a) => a.alg === TPM_ALG.RSA));
});

test("PCR_Read and PCR_Extend agree with the software extend rule", async () => {
  const sel = [pcrSelection(TPM_ALG.SHA256, [0, 16, 23]), pcrSelection(TPM_ALG.SHA1, [16])];
  const before = await sw.tpm.pcrRead(sel);
  const d256 = hash(TPM_ALG.SHA256, new TextEncoder().encode("bulwark"));
  const d1 = hash(TPM_ALG.SHA1, new TextEncoder().encode("bulwark"));
  await sw.tpm.pcrExtend(16, [
    { hashAlg: TPM_ALG.SHA256, digest: d256 },
    { hashAlg: TPM_ALG.SHA1, digest: d1 },
  ]);
  const afterRead = await sw.tpm.pcrRead(sel);
  const old256 = before.values.get(TPM_ALG.SHA256)?.get(16);
  const old1 = before.values.get(TPM_ALG.SHA1)?.get(16);
  assert.ok(old256 && old1);
  assert.deepEqual(afterRead.values.get(TPM_ALG.SHA256)?.get(16), extendPcr(TPM_ALG.SHA256, old256, d256));
  assert.deepEqual(afterRead.values.get(TPM_ALG.SHA1)?.get(16), extendPcr(TPM_ALG.SHA1, old1, d1));
  assert.deepEqual(afterRead.values.get(TPM_ALG.SHA256)?.get(0), before.values.get(TPM_ALG.SHA256)?.get(0));
  assert.ok(afterRead.updateCounter >= before.updateCounter);
  // All 24 PCRs of a bank need several PCR_Read calls (8 digests per response).
  const all = await sw.tpm.pcrRead([
    pcrSelection(
      TPM_ALG.SHA256,
      Array.from({ length: 24 }, (_, i) => i),
    ),
  ]);
  assert.equal(all.values.get(TPM_ALG.SHA256)?.size, 24);
});

test("CreatePrimary with the TCG EK templates reproduces swtpm_setup's EK and its certificate key", async () => {
  const ek = await sw.tpm.createPrimary(TPM_RH.ENDORSEMENT, ekTemplateRsa2048());
  try {
    assert.deepEqual(objectName(ek.public), ek.name);
    const persisted = await sw.tpm.readPublic(WELL_KNOWN.EK_RSA_PERSISTENT);
    assert.deepEqual(persisted.name, ek.name, "same template and seed give the same EK");
    const der = await sw.tpm.nvRead(WELL_KNOWN.EK_CERT_RSA2048, { authHandle: hierarchyRef(TPM_RH.OWNER) });
    const cert = new X509Certificate(Buffer.from(der));
    const certKey = cert.publicKey.export({ format: "der", type: "spki" });
    const ours = publicKeyFromTpm(ek.public.value).export({ format: "der", type: "spki" });
    assert.deepEqual(ours, certKey);
  } finally {
    await sw.tpm.flushContext(ek.handle);
  }
  const ecc = await sw.tpm.createPrimary(TPM_RH.ENDORSEMENT, ekTemplateEccP256());
  try {
    assert.equal(ecc.public.value.type, TPM_ALG.ECC);
    assert.deepEqual(objectName(ecc.public), ecc.name);
    const k = publicKeyFromTpm(ecc.public.value);
    assert.equal(k.asymmetricKeyDetails?.namedCurve, "prime256v1");
  } finally {
    await sw.tpm.flushContext(ecc.handle);
  }
});

test("EK certificates at the well-known NV indices carry the EKs' public keys", async () => {
  const certs = await readEkCertificates(sw.tpm);
  assert.deepEqual(
    certs.map((c) => c.index),
    [WELL_KNOWN.EK_CERT_RSA2048, WELL_KNOWN.EK_CERT_ECC_P384],
  );
  const persistentFor = new Map<number, number>([
    [WELL_KNOWN.EK_CERT_RSA2048, WELL_KNOWN.EK_RSA_PERSISTENT],
    [WELL_KNOWN.EK_CERT_ECC_P384, 0x81010016],
  ]);
  for (const c of certs) {
    const cert = new X509Certificate(Buffer.from(c.der));
    const ek = await sw.tpm.readPublic(persistentFor.get(c.index)!);
    assert.deepEqual(
      publicKeyFromTpm(ek.public.value).export({ format: "der", type: "spki" }),
      cert.publicKey.export({ format: "der", type: "spki" }),
      c.kind,
    );
    assert.deepEqual(
      checkEkPublic(ek.public.value).findings.filter((x) => x.severity === "error"),
      [],
    );
  }
});

test("NV_DefineSpace, NV_Write, NV_ReadPublic, NV_Read (EK certificate index 0x01c0000a under the platform)", async () => {
  const index = WELL_KNOWN.EK_CERT_ECC_P256;
  const data = new Uint8Array(1500).map((_, i) => (i * 7) & 0xff);
  const attrs = nvAttributes(
    "PPWRITE",
    "PPREAD",
    "OWNERREAD",
    "AUTHREAD",
    "NO_DA",
    "PLATFORMCREATE",
    "WRITEDEFINE",
  );
  await sw.tpm.nvDefineSpace(hierarchyRef(TPM_RH.PLATFORM), {
    nvIndex: index,
    nameAlg: TPM_ALG.SHA256,
    attributes: attrs,
    authPolicy: new Uint8Array(0),
    dataSize: data.length,
  });
  await sw.tpm.nvWrite(index, data, { authHandle: hierarchyRef(TPM_RH.PLATFORM) });
  const info = await sw.tpm.nvReadPublic(index);
  assert.equal(info.public.dataSize, data.length);
  assert.ok((info.public.attributes & TPMA_NV.WRITTEN) >>> 0 !== 0);
  assert.deepEqual(nvName(info.public.nameAlg, info.raw), info.name);
  assert.deepEqual(await sw.tpm.nvRead(index, { authHandle: hierarchyRef(TPM_RH.OWNER) }), data);
  assert.deepEqual(await sw.tpm.nvRead(index, { offset: 1000, size: 20 }), data.subarray(1000, 1020));
  await sw.tpm.nvUndefineSpace(hierarchyRef(TPM_RH.PLATFORM), index);
  await assert.rejects(sw.tpm.nvReadPublic(index), { code: "TPM_ERR_RESPONSE_CODE" });
});

test("HMAC session: cpHash/rpHash verified; wrong authValue fails with TPM_RC_AUTH_FAIL naming session 1", async () => {
  const srk = await sw.tpm.createPrimary(TPM_RH.OWNER, srkTemplateRsa2048());
  const userAuth = new TextEncoder().encode("s3cret");
  try {
    const obj = await sw.tpm.create(srk, sealedObjectTemplate(new Uint8Array(0)), {
      userAuth,
      data: new TextEncoder().encode("payload"),
    });
    const loaded = await sw.tpm.load(srk, obj, { userAuth });
    try {
      const s = await sw.tpm.startAuthSession("hmac");
      assert.ok(s instanceof HmacSession);
      try {
        assert.deepEqual(new TextDecoder().decode(await sw.tpm.unseal(loaded, s)), "payload");
        // The session continues: a second command uses the rolled nonces.
        assert.deepEqual(new TextDecoder().decode(await sw.tpm.unseal(loaded, s)), "payload");
        await assert.rejects(
          sw.tpm.unseal({ ...loaded, auth: new TextEncoder().encode("wrong") }, s),
          (e: unknown) => {
            assert.ok(isTpmError(e));
            assert.equal(e.details["name"], "TPM_RC_AUTH_FAIL");
            assert.equal(e.details["session"], 1);
            return true;
          },
        );
      } finally {
        await sw.tpm.flushContext(s.handle).catch(() => undefined);
      }
      assert.deepEqual(
        new TextDecoder().decode(await sw.tpm.unseal(loaded, new PasswordSession(userAuth))),
        "payload",
      );
    } finally {
      await sw.tpm.flushContext(loaded.handle);
    }
  } finally {
    await sw.tpm.flushContext(srk.handle);
  }
});

test("Policy sessions: PolicyPCR, PolicySecret, PolicyCommandCode match the software digests", async () => {
  const sel = [pcrSelection(TPM_ALG.SHA256, [0, 1, 2])];
  const { values } = await sw.tpm.pcrRead(sel);
  const trial = await sw.tpm.startAuthSession("trial");
  try {
    await sw.tpm.policyPcr(trial, sel);
    const expected = policyPcr(
      TPM_ALG.SHA256,
      emptyPolicy(TPM_ALG.SHA256),
      sel,
      pcrDigest(TPM_ALG.SHA256, sel, values),
    );
    assert.deepEqual(await sw.tpm.policyGetDigest(trial), expected);
    await sw.tpm.policyCommandCode(trial, 0x15e);
    assert.deepEqual(await sw.tpm.policyGetDigest(trial), policyCommandCode(TPM_ALG.SHA256, expected, 0x15e));
  } finally {
    await sw.tpm.flushContext(trial.handle);
  }
  const ekPolicy = await sw.tpm.ekPolicySession();
  try {
    const want = policySecret(TPM_ALG.SHA256, emptyPolicy(TPM_ALG.SHA256), Uint8Array.of(0x40, 0, 0, 0x0b));
    assert.deepEqual(await sw.tpm.policyGetDigest(ekPolicy), want);
    assert.deepEqual(want, ekTemplateRsa2048().authPolicy, "PolicyA of the EK Credential Profile");
  } finally {
    await sw.tpm.flushContext(ekPolicy.handle);
  }
});

test("PolicyAuthValue: a policy session HMACs with the object's authValue; a wrong one is refused", async () => {
  const srk = await sw.tpm.createPrimary(TPM_RH.OWNER, srkTemplateRsa2048());
  const userAuth = new TextEncoder().encode("policy-auth");
  try {
    const policy = policyAuthValue(TPM_ALG.SHA256, emptyPolicy(TPM_ALG.SHA256));
    const obj = await sw.tpm.create(srk, sealedObjectTemplate(policy), {
      userAuth,
      data: Uint8Array.of(1, 2, 3),
    });
    const item = await sw.tpm.load(srk, obj, { userAuth });
    try {
      const s = await sw.tpm.startAuthSession("policy");
      await sw.tpm.policyAuthValue(s);
      assert.deepEqual(await sw.tpm.policyGetDigest(s), policy);
      assert.deepEqual(await sw.tpm.unseal(item, s), Uint8Array.of(1, 2, 3));
      await sw.tpm.flushContext(s.handle);
      const s2 = await sw.tpm.startAuthSession("policy");
      await sw.tpm.policyAuthValue(s2);
      await assert.rejects(sw.tpm.unseal({ ...item, auth: new TextEncoder().encode("nope") }, s2), {
        code: "TPM_ERR_RESPONSE_CODE",
      });
      await sw.tpm.flushContext(s2.handle).catch(() => undefined);
    } finally {
      await sw.tpm.flushContext(item.handle);
    }
  } finally {
    await sw.tpm.flushContext(srk.handle);
  }
});

test("TPM2_MakeCredential on the TPM and our software MakeCredential both activate", async () => {
  const ek = await sw.tpm.readPublic(WELL_KNOWN.EK_RSA_PERSISTENT);
  const srk = await sw.tpm.createPrimary(TPM_RH.OWNER, srkTemplateRsa2048());
  try {
    const ak = await sw.tpm.load(srk, await sw.tpm.create(srk, akTemplateEccP256()));
    try {
      const secret = new TextEncoder().encode("made by the TPM");
      const made = await sw.tpm.makeCredential(ek, secret, ak.name);
      for (const cred of [made, makeCredential(ek.public.value, ak.name, secret)]) {
        const s = await sw.tpm.ekPolicySession();
        assert.deepEqual(
          await sw.tpm.activateCredential(ak, ek, cred.credentialBlob, cred.secret, { ek: s }),
          secret,
        );
        await sw.tpm.flushContext(s.handle);
      }
      // The server-side flow: checks, fresh secret, activation, comparison.
      const challenge = credentialChallenge(ek.public, ak.public);
      assert.equal(challenge.verdict.ok, true, JSON.stringify(challenge.verdict.findings));
      assert.ok(challenge.credential && challenge.secret);
      const s = await sw.tpm.ekPolicySession();
      const returned = await sw.tpm.activateCredential(
        ak,
        ek,
        challenge.credential.credentialBlob,
        challenge.credential.secret,
        { ek: s },
      );
      await sw.tpm.flushContext(s.handle);
      assert.equal(checkActivatedSecret(challenge.secret, returned).ok, true);
      const refused = credentialChallenge(ek.public, srk.public);
      assert.equal(refused.verdict.ok, false);
      assert.equal(refused.credential, undefined);
      assert.ok(refused.verdict.findings.some((f) => f.id === "ak.attributes.sign"));
    } finally {
      await sw.tpm.flushContext(ak.handle);
    }
  } finally {
    await sw.tpm.flushContext(srk.handle);
  }
});

test("EvictControl makes a key persistent and evicts it", async () => {
  const srk = await sw.tpm.createPrimary(TPM_RH.OWNER, srkTemplateRsa2048());
  const persistent = 0x81000101;
  try {
    await sw.tpm.evictControl(hierarchyRef(TPM_RH.OWNER), srk, persistent);
  } finally {
    await sw.tpm.flushContext(srk.handle);
  }
  const p = await sw.tpm.readPublic(persistent);
  assert.deepEqual(p.name, srk.name);
  await sw.tpm.evictControl(hierarchyRef(TPM_RH.OWNER), p, persistent);
  assert.ok(!(await sw.tpm.handles(TPM_HT.PERSISTENT)).includes(persistent));
  assert.ok(
    bytesEqual(
      createHash("sha256").update("x").digest(),
      hash(TPM_ALG.SHA256, new TextEncoder().encode("x")),
    ),
  );
});

test("Shutdown(STATE), power cycle through the control channel, Startup(STATE) keeps PCR 10", async () => {
  const sel = [pcrSelection(TPM_ALG.SHA256, [10])];
  await sw.tpm.pcrExtend(10, [{ hashAlg: TPM_ALG.SHA256, digest: new Uint8Array(32).fill(1) }]);
  const before = (await sw.tpm.pcrRead(sel)).values.get(TPM_ALG.SHA256)?.get(10);
  assert.notDeepEqual(before, new Uint8Array(32));
  await sw.tpm.shutdown(TPM_SU.STATE);
  await sw.transport.close();
  await sw.control.init();
  await sw.tpm.startup(TPM_SU.STATE);
  assert.deepEqual((await sw.tpm.pcrRead(sel)).values.get(TPM_ALG.SHA256)?.get(10), before);
  await sw.tpm.shutdown(TPM_SU.CLEAR);
  await sw.transport.close();
  await sw.control.init();
  await sw.tpm.startup(TPM_SU.CLEAR);
  assert.deepEqual((await sw.tpm.pcrRead(sel)).values.get(TPM_ALG.SHA256)?.get(10), new Uint8Array(32));
});

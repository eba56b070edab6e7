/**
 * Software parts without a TPM: response codes, KDFs, policy digests, targets, selection helpers,
 * software MakeCredential input checks.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { decodeResponseCode, formatResponseCode } from "../../src/tpm/rc.js";
import { kdfa, kdfe } from "../../src/tpm/kdf.js";
import { hashByName, hashInfo, TPM_ALG } from "../../src/tpm/alg.js";
import { parsePcrSpec, pcrSelection, selectedIndices } from "../../src/tpm/pcr.js";
import { parseTarget } from "../../src/tpm/transport/target.js";
import { SwtpmTransport } from "../../src/tpm/transport/swtpm.js";
import { MssimTransport } from "../../src/tpm/transport/mssim.js";
import { DeviceTransport } from "../../src/tpm/transport/device.js";
import { makeCredential, checkActivatedSecret } from "../../src/tpm/verify/credential.js";
import { ekTemplateRsa2048, akTemplateRsa2048 } from "../../src/tpm/templates.js";
import { marshalCommand, unmarshalResponse } from "../../src/tpm/command.js";
import { ActivateCredential, Startup } from "../../src/tpm/commands.js";

test("response codes decode as data: names, handle/parameter/session index, warning flag", () => {
  const authFail = decodeResponseCode(0x98e); // TPM_RC_AUTH_FAIL + TPM_RC_S + TPM_RC_1
  assert.equal(authFail.name, "TPM_RC_AUTH_FAIL");
  assert.equal(authFail.session, 1);
  assert.equal(authFail.format, 1);
  assert.equal(authFail.warning, false);
  const param = decodeResponseCode(0x2d2); // TPM_RC_SCHEME + TPM_RC_P + TPM_RC_2
  assert.equal(param.name, "TPM_RC_SCHEME");
  assert.equal(param.parameter, 2);
  const handle = decodeResponseCode(0x18b); // TPM_RC_HANDLE + TPM_RC_H + TPM_RC_1
  assert.equal(handle.name, "TPM_RC_HANDLE");
  assert.equal(handle.handle, 1);
  const retry = decodeResponseCode(0x922);
  assert.equal(retry.name, "TPM_RC_RETRY");
  assert.equal(retry.warning, true);
  assert.equal(decodeResponseCode(0x100).name, "TPM_RC_INITIALIZE");
  assert.equal(decodeResponseCode(0x902).name, "TPM_RC_OBJECT_MEMORY");
  assert.equal(decodeResponseCode(0x912).name, "TPM_RC_REFERENCE_H2");
  assert.equal(decodeResponseCode(0).name, "TPM_RC_SUCCESS");
  assert.equal(decodeResponseCode(0x0000001e).name, "TPM_RC_BAD_TAG");
  assert.equal(decodeResponseCode(0x0a000a).tpm12, true);
  assert.match(formatResponseCode(authFail), /TPM_RC_AUTH_FAIL \(session 1\)/);
});

test("KDFa is SP800-108 counter-mode HMAC with the spec's label and length encoding", () => {
  const key = new Uint8Array(32).fill(7);
  const ctxU = new Uint8Array([1, 2, 3]);
  const ctxV = new Uint8Array([4, 5]);
  const out = kdfa(TPM_ALG.SHA256, key, "STORAGE", ctxU, ctxV, 384);
  const block = (i: number) =>
    createHmac("sha256", key)
      .update(Buffer.from([0, 0, 0, i]))
      .update("STORAGE\0")
      .update(ctxU)
      .update(ctxV)
      .update(Buffer.from([0, 0, 1, 0x80]))
      .digest();
  assert.deepEqual(Buffer.from(out), Buffer.concat([block(1), block(2)]).subarray(0, 48));
  assert.equal(kdfa(TPM_ALG.SHA1, key, "X", ctxU, ctxV, 128).length, 16);
  assert.equal(kdfe(TPM_ALG.SHA256, key, "IDENTITY", ctxU, ctxV, 256).length, 32);
  assert.throws(() => kdfa(0x9999, key, "X", ctxU, ctxV, 128), { code: "TPM_ERR_UNSUPPORTED_ALG" });
});

test("hash names, PCR selections and specs", () => {
  assert.equal(hashByName("sha256").alg, TPM_ALG.SHA256);
  assert.equal(hashByName("TPM_ALG_SHA384").size, 48);
  assert.equal(hashByName("0x0004").name, "sha1");
  assert.equal(hashInfo(TPM_ALG.SM3_256).node, "sm3");
  assert.throws(() => hashByName("md5"), { code: "TPM_ERR_UNSUPPORTED_ALG" });
  const sel = parsePcrSpec("sha256:0,7,23+sha1:all", hashByName);
  assert.deepEqual(selectedIndices(sel[0]!), [0, 7, 23]);
  assert.equal(selectedIndices(sel[1]!).length, 24);
  assert.deepEqual(pcrSelection(TPM_ALG.SHA256, [0, 1, 2]).pcrSelect, Uint8Array.of(7, 0, 0));
  assert.throws(() => parsePcrSpec("sha256:99", hashByName), { code: "TPM_ERR_INVALID_ARGUMENT" });
});

test("targets: tpm2-tools TCTI-like strings", () => {
  const s = parseTarget("swtpm:host=127.0.0.1,port=2321");
  assert.ok(s.transport instanceof SwtpmTransport);
  assert.ok(s.powerOn);
  assert.ok(parseTarget("mssim:port=2321").transport instanceof MssimTransport);
  assert.ok(parseTarget("swtpm:path=/run/x.sock").transport instanceof SwtpmTransport);
  const d = parseTarget("device:/dev/tpmrm0");
  assert.ok(d.transport instanceof DeviceTransport);
  assert.equal(d.powerOn, undefined);
  assert.throws(() => parseTarget("tabrmd:bus_name=x"), { code: "TPM_ERR_INVALID_TARGET" });
  assert.throws(() => parseTarget("swtpm:port=99999"), { code: "TPM_ERR_INVALID_TARGET" });
});

test("software MakeCredential refuses bad inputs with typed errors; secrets compare in constant time", () => {
  const ek = ekTemplateRsa2048();
  assert.throws(() => makeCredential(ek, new Uint8Array(34), new Uint8Array(0)), {
    code: "TPM_ERR_INVALID_ARGUMENT",
  });
  assert.throws(() => makeCredential(ek, new Uint8Array(34), new Uint8Array(33)), {
    code: "TPM_ERR_INVALID_ARGUMENT",
  });
  assert.throws(
    () => makeCredential(ek, new Uint8Array(34), new Uint8Array(16)),
    { code: "TPM_ERR_INVALID_KEY" },
    "template has no modulus",
  );
  assert.throws(() => makeCredential(akTemplateRsa2048(), new Uint8Array(34), new Uint8Array(16)), {
    code: "TPM_ERR_INVALID_KEY",
  });
  assert.equal(checkActivatedSecret(Uint8Array.of(1, 2), Uint8Array.of(1, 2)).ok, true);
  const bad = checkActivatedSecret(Uint8Array.of(1, 2), Uint8Array.of(1, 3));
  assert.equal(bad.ok, false);
  assert.equal(bad.findings[0]?.id, "credential.secret");
});

test("command marshaling: header, size and tag (TPM2_Startup(CLEAR) = 80 01 00 00 00 0c 00 00 01 44 00 00)", () => {
  const { bytes } = marshalCommand(Startup, [], [], { startupType: 0 });
  assert.equal(Buffer.from(bytes).toString("hex"), "80010000000c000001440000");
});

test("a TPM_RC_INTEGRITY answer is TPM_ERR_INTEGRITY, other refusals TPM_ERR_RESPONSE_CODE, both with the decoded code", () => {
  // TPM_ST_NO_SESSIONS, size 10, then the response code: 0x09f with parameter 1 (0x1c0 | 0x09f).
  const answer = (rc: number) => Buffer.from(`80010000000a${rc.toString(16).padStart(8, "0")}`, "hex");
  assert.throws(
    () => unmarshalResponse(ActivateCredential, [], [], answer(0x1df)),
    (e: unknown) => {
      const err = e as { code: string; details: Record<string, unknown> };
      assert.equal(err.code, "TPM_ERR_INTEGRITY");
      assert.equal(err.details["name"], "TPM_RC_INTEGRITY");
      assert.equal(err.details["parameter"], 1);
      assert.equal(err.details["command"], "TPM2_ActivateCredential");
      return true;
    },
  );
  assert.throws(() => unmarshalResponse(ActivateCredential, [], [], answer(0x98e)), {
    code: "TPM_ERR_RESPONSE_CODE",
  });
});

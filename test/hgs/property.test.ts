/**
 * Property tests (fast-check, 10,000 runs each) for every HGS decoder of untrusted input: the
 * health certificate parser and verifier, the baseline parser, the TPM evidence judge (quote,
 * signature, PCR values and event log bytes), the EK/AK public parser; and a fuzz of the HTTP
 * routes (random bodies must get a typed 4xx, never a 500).
 */
import assert from "node:assert/strict";
import { createPublicKey } from "node:crypto";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { isBulwarkError } from "../../src/core/errors.js";
import { parseBaseline } from "../../src/attest/baseline.js";
import {
  issueHealthCertificate,
  parseHealthCertificate,
  verifyHealthCertificate,
} from "../../src/attest/health.js";
import { judgeTpmEvidence, parseTpm2bPublic } from "../../src/attest/tpm-judge.js";
import { POLICIES } from "../../src/attest/policies.js";
import { ecKey, startHgs, type HgsFixture } from "../helpers/hgs-fixture.js";
import { encodeLog, bootEvents } from "../helpers/hgs-host.js";
import { TPM_RH } from "../../src/tpm/constants.js";
import { publicArea } from "../../src/tpm/structures.js";
import { akTemplateEccP256 } from "../../src/tpm/templates.js";

const RUNS = 10_000;

function typed(code: string, fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (!isBulwarkError(e) || e.code !== code) throw e;
  }
}

const mutate = (s: string) =>
  fc.tuple(fc.nat(), fc.integer({ min: 32, max: 126 })).map(([i, c]) => {
    const at = s.length === 0 ? 0 : i % s.length;
    return s.slice(0, at) + String.fromCharCode(c) + s.slice(at + 1);
  });

describe("HGS decoders under random and mutated input", () => {
  const signer = ecKey();
  const signerPublic = createPublicKey(signer);
  const valid = issueHealthCertificate({
    signer,
    hostId: "ab".repeat(32),
    name: "host",
    mode: "key",
    keyReleaseKey: createPublicKey(ecKey()),
    lifetimeSeconds: 3600,
  }).text;

  it("parseHealthCertificate: any string is a value or HGS_ERR_HEALTH_CERTIFICATE", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 400 }), fc.anything()), (s) =>
        typed("HGS_ERR_HEALTH_CERTIFICATE", () => parseHealthCertificate(s)),
      ),
      { numRuns: RUNS },
    );
  });

  it("verifyHealthCertificate: a one-character edit never verifies", () => {
    fc.assert(
      fc.property(mutate(valid), (s) => {
        if (s === valid) return;
        let ok = false;
        try {
          verifyHealthCertificate(s, { signerPublic });
          ok = true;
        } catch (e) {
          if (!isBulwarkError(e) || e.code !== "HGS_ERR_HEALTH_CERTIFICATE") throw e;
        }
        // base64url's last character may carry unused bits: an edit there can decode to the same bytes.
        if (ok)
          assert.equal(
            Buffer.from(s.split(".")[2] ?? "", "base64url").equals(
              Buffer.from(valid.split(".")[2] ?? "", "base64url"),
            ),
            true,
          );
      }),
      { numRuns: RUNS },
    );
  });

  it("parseBaseline: any JSON value or text is a baseline or HGS_ERR_INVALID", () => {
    const good = {
      format: "bulwark-hgs-baseline/v1",
      kind: "codeintegrity",
      name: "x",
      bank: "sha256",
      pcrs: { "4": "00".repeat(32) },
    };
    const text = JSON.stringify(good);
    fc.assert(
      fc.property(
        fc.oneof(
          fc.jsonValue(),
          fc.string(),
          mutate(text),
          fc.record({ ...Object.fromEntries(Object.keys(good).map((k) => [k, fc.jsonValue()])) }),
        ),
        (v) => typed("HGS_ERR_INVALID", () => parseBaseline(v)),
      ),
      { numRuns: RUNS },
    );
  });

  it("parseTpm2bPublic: random and mutated bytes are a public area or HGS_ERR_INVALID", () => {
    const ak = Buffer.from(publicArea(akTemplateEccP256()).raw);
    const framed = Buffer.concat([Buffer.from([ak.length >> 8, ak.length & 255]), ak]);
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 600 }),
          fc.tuple(fc.nat(framed.length - 1), fc.integer({ min: 0, max: 255 })).map(([i, v]) => {
            const m = Buffer.from(framed);
            m[i] = v;
            return new Uint8Array(m);
          }),
        ),
        (b) => typed("HGS_ERR_INVALID", () => parseTpm2bPublic(b, "fuzz")),
      ),
      { numRuns: RUNS },
    );
    assert.equal(TPM_RH.OWNER > 0, true);
  });

  it("judgeTpmEvidence: random or mutated quote, signature, PCRs and log give findings, never a crash", () => {
    const ak = publicArea(akTemplateEccP256());
    const log = Buffer.from(encodeLog(bootEvents()));
    const krk = createPublicKey(ecKey());
    const enabled = new Set(POLICIES.map((p) => p.id));
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 200 }),
        fc.uint8Array({ maxLength: 120 }),
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }),
          fc.tuple(fc.nat(log.length - 1), fc.integer({ min: 0, max: 255 })).map(([i, v]) => {
            const m = Buffer.from(log);
            m[i] = v;
            return new Uint8Array(m);
          }),
        ),
        (quote, signature, eventLog) => {
          const j = judgeTpmEvidence({
            ak,
            nonce: new Uint8Array(32),
            keyReleaseKey: krk,
            evidence: { quote, signature, pcrs: new Map([[0, new Uint8Array(32)]]), eventLog },
            enabledPolicies: enabled,
            baselines: [],
          });
          assert.ok(j.findings.length > 0, "random evidence must never pass");
        },
      ),
      { numRuns: RUNS },
    );
  });
});

describe("HGS routes under random bodies", () => {
  let fx: HgsFixture;
  before(async () => {
    // The routes are fuzzed here, not the per-source failure limit (rate-limit.test.ts).
    fx = await startHgs({ tls: false, limits: { failureBurst: 1_000_000 } });
  });
  after(() => fx.close());

  it("random JSON to every host route gets a typed 4xx (2,000 requests)", async () => {
    const urls = [
      "/host/v1/challenge",
      "/host/v1/attest/key",
      "/host/v1/attest/tpm",
      "/host/v1/keys/release",
      "/host/v1/tpm/ak/challenge",
      "/host/v1/tpm/ak/activate",
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...urls),
        fc.oneof(
          fc.jsonValue(),
          fc.dictionary(
            fc.constantFrom(
              "hostId",
              "nonce",
              "keyReleaseKey",
              "signature",
              "quote",
              "pcrs",
              "eventLog",
              "healthCertificate",
              "keyProtector",
              "requestId",
              "timestamp",
              "akPublic",
              "challengeId",
              "secret",
            ),
            fc.jsonValue(),
          ),
        ),
        async (url, body) => {
          const r = await fx.app.inject({
            method: "POST",
            url,
            headers: { "content-type": "application/json" },
            payload: JSON.stringify(body) ?? "null",
          });
          assert.ok(
            r.statusCode >= 400 && r.statusCode < 500,
            `${url} ${JSON.stringify(body)} → ${r.statusCode} ${r.body}`,
          );
          const err = (r.json() as { error?: { code?: string } }).error;
          assert.match(err?.code ?? "", /^HGS_ERR_/);
        },
      ),
      { numRuns: 2000 },
    );
  });
});

/**
 * Property tests (fast-check, 10,000 runs each) for every unmarshaller of untrusted input:
 * random bytes and mutated real vectors give a value or a typed BulwarkError, never a crash;
 * whatever decodes re-encodes to the same bytes.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import fc from "fast-check";
import { decode, encode, type Codec } from "../../src/core/codec.js";
import { isBulwarkError } from "../../src/core/errors.js";
import * as S from "../../src/tpm/structures.js";
import * as C from "../../src/tpm/commands.js";
import { TPMS_AUTH_RESPONSE, PasswordSession, HmacSession } from "../../src/tpm/sessions.js";
import {
  TPM2_TOOLS_CREDENTIAL,
  TPM2_TOOLS_PCRS,
  readCredentialFile,
  readPcrFile,
  readPcrValuesFile,
  readPcrValuesText,
} from "../../src/tpm/files.js";
import { unmarshalResponse, type CommandSpec } from "../../src/tpm/command.js";
import { decodeResponseCode } from "../../src/tpm/rc.js";
import { loadPublicKey } from "../../src/tpm/verify/keys.js";
import { verifyQuote } from "../../src/tpm/verify/quote.js";
import { checkAkPublic, checkEkPublic } from "../../src/tpm/verify/ak.js";
import { isTpmError } from "../../src/tpm/errors.js";
import { pcrSelection } from "../../src/tpm/pcr.js";
import { TPM_ALG } from "../../src/tpm/alg.js";
import { repoPath } from "../helpers/paths.js";

const RUNS = 10_000;
const root = repoPath("test/vectors/tpm");
const vec = (...p: string[]): Uint8Array => new Uint8Array(readFileSync(path.join(root, ...p)));
const quoteDirs = readdirSync(root).filter((d) => d.startsWith("quote-"));
const transcript = JSON.parse(readFileSync(path.join(root, "transcripts/session.json"), "utf8")) as {
  entries: { response: string }[];
};
const responses = transcript.entries.map((e) => new Uint8Array(Buffer.from(e.response, "hex")));

/** Random bytes, or a real vector with flipped, inserted, deleted or truncated bytes. */
function inputs(seeds: Uint8Array[], maxLength = 600): fc.Arbitrary<Uint8Array> {
  const mutated = fc
    .tuple(
      fc.constantFrom(...seeds),
      fc.array(
        fc.tuple(
          fc.nat(),
          fc.integer({ min: 0, max: 255 }),
          fc.constantFrom("flip", "set", "insert", "delete"),
        ),
        { maxLength: 4 },
      ),
      fc.option(fc.nat(), { nil: undefined }),
    )
    .map(([seed, edits, cut]) => {
      let b = Array.from(seed);
      for (const [pos, val, kind] of edits) {
        const i = b.length ? pos % b.length : 0;
        if (kind === "flip") b[i] = (b[i] ?? 0) ^ (1 << (val & 7));
        else if (kind === "set") b[i] = val;
        else if (kind === "insert") b.splice(i, 0, val);
        else b.splice(i, 1);
      }
      if (cut !== undefined && b.length) b = b.slice(0, cut % (b.length + 1));
      return Uint8Array.from(b);
    });
  return seeds.length
    ? fc.oneof(fc.uint8Array({ maxLength }), mutated, mutated)
    : fc.uint8Array({ maxLength });
}

/** Decoding gives a value whose re-encoding is identical, or a typed error. */
function totalAndRoundTrip<T>(codec: Codec<T>, seeds: Uint8Array[]): void {
  let decoded = 0;
  fc.assert(
    fc.property(inputs(seeds), (bytes) => {
      let v: T;
      try {
        v = decode(codec, bytes);
      } catch (e) {
        if (isBulwarkError(e)) return;
        throw e;
      }
      decoded++;
      assert.deepEqual(encode(codec, v), bytes);
    }),
    { numRuns: RUNS },
  );
  if (seeds.length) assert.ok(decoded > 0, `${codec.name}: some inputs must decode`);
}

/** A function of untrusted bytes returns or throws a BulwarkError. */
function total(fn: (b: Uint8Array) => unknown, seeds: Uint8Array[]): void {
  fc.assert(
    fc.property(inputs(seeds), (bytes) => {
      try {
        fn(bytes);
      } catch (e) {
        if (!isBulwarkError(e)) throw e;
      }
    }),
    { numRuns: RUNS },
  );
}

const akPubs = quoteDirs.map((d) => vec(d, "ak.pub"));
const ekPubs = quoteDirs.map((d) => vec(d, "ek.pub"));
const msgs = quoteDirs.map((d) => vec(d, "quote.msg"));
const sigs = quoteDirs.map((d) => vec(d, "quote.sig"));
const pcrFiles = quoteDirs.map((d) => vec(d, "quote.pcrs"));
const tpmtPublics = [...akPubs, ...ekPubs].map((b) => b.subarray(2));
const pemSeeds = akPubs.flatMap((b) => {
  const key = loadPublicKey(b).key;
  return [
    new TextEncoder().encode(key.export({ format: "pem", type: "spki" }).toString()),
    new Uint8Array(key.export({ format: "der", type: "spki" })),
  ];
});

test("TPM2B_PUBLIC / TPMT_PUBLIC", () => {
  totalAndRoundTrip(S.TPM2B_PUBLIC_RAW, [...akPubs, ...ekPubs]);
  totalAndRoundTrip(S.TPMT_PUBLIC, tpmtPublics);
});

test("TPMS_ATTEST", () => totalAndRoundTrip(S.TPMS_ATTEST, msgs));
test("TPMT_SIGNATURE", () => totalAndRoundTrip(S.TPMT_SIGNATURE, sigs));
test("TPML_PCR_SELECTION, TPML_DIGEST, TPMT_HA", () => {
  totalAndRoundTrip(S.TPML_PCR_SELECTION, [
    encode(S.TPML_PCR_SELECTION, [pcrSelection(TPM_ALG.SHA256, [0, 7]), pcrSelection(TPM_ALG.SHA1, [1])]),
  ]);
  totalAndRoundTrip(S.TPML_DIGEST, [encode(S.TPML_DIGEST, [new Uint8Array(32), new Uint8Array(20)])]);
  totalAndRoundTrip(S.TPMT_HA, [encode(S.TPMT_HA, { hashAlg: TPM_ALG.SHA256, digest: new Uint8Array(32) })]);
});
test("TPMS_CAPABILITY_DATA", () => {
  const seeds = responses.filter((r) => r.length > 15 && r[9] === 0).map((r) => r.subarray(11));
  totalAndRoundTrip(S.TPMS_CAPABILITY_DATA, [
    ...seeds,
    encode(S.TPMS_CAPABILITY_DATA, { capability: 1, data: [0x81010001, 0x81000001] }),
  ]);
});
test("TPMS_NV_PUBLIC, TPM2B_NV_PUBLIC, TPMS_CREATION_DATA, TPMT_TK, TPMS_ID_OBJECT, TPMS_CONTEXT, TPMS_AUTH_RESPONSE", () => {
  const nv = encode(S.TPMS_NV_PUBLIC, {
    nvIndex: 0x01c00002,
    nameAlg: TPM_ALG.SHA256,
    attributes: 0x42072001,
    authPolicy: new Uint8Array(0),
    dataSize: 1200,
  });
  totalAndRoundTrip(S.TPMS_NV_PUBLIC, [nv]);
  totalAndRoundTrip(S.TPM2B_NV_PUBLIC_RAW, [Uint8Array.of(0, nv.length, ...nv)]);
  totalAndRoundTrip(S.TPMS_CREATION_DATA, [
    encode(S.TPMS_CREATION_DATA, {
      pcrSelect: [],
      pcrDigest: new Uint8Array(32),
      locality: 1,
      parentNameAlg: TPM_ALG.SHA256,
      parentName: new Uint8Array(34),
      parentQualifiedName: new Uint8Array(34),
      outsideInfo: new Uint8Array(0),
    }),
  ]);
  totalAndRoundTrip(S.TPMT_TK, [
    encode(S.TPMT_TK, { tag: 0x8021, hierarchy: 0x40000001, digest: new Uint8Array(32) }),
  ]);
  const cred = readCredentialFile(vec("credential", "cred.blob"));
  totalAndRoundTrip(S.TPMS_ID_OBJECT, [cred.credentialBlob]);
  totalAndRoundTrip(S.TPMS_CONTEXT, [
    encode(S.TPMS_CONTEXT, {
      sequence: 5n,
      savedHandle: 0x80000000,
      hierarchy: 0x40000001,
      contextBlob: new Uint8Array(100),
    }),
  ]);
  totalAndRoundTrip(TPMS_AUTH_RESPONSE, [
    encode(TPMS_AUTH_RESPONSE, { nonce: new Uint8Array(32), sessionAttributes: 1, hmac: new Uint8Array(32) }),
  ]);
});
test("tpm2-tools files: credential blob and PCR files", () => {
  totalAndRoundTrip(TPM2_TOOLS_CREDENTIAL, [vec("credential", "cred.blob")]);
  total(readCredentialFile, [vec("credential", "cred.blob")]);
  totalAndRoundTrip(TPM2_TOOLS_PCRS, pcrFiles);
  total(readPcrFile, pcrFiles);
  total((b) => readPcrValuesFile(b, [pcrSelection(TPM_ALG.SHA256, [0, 1])]), [new Uint8Array(64)]);
  const text = new TextEncoder();
  total(readPcrValuesText, [
    text.encode(
      `{"pcrs":{"sha256":{"0":"${"00".repeat(32)}","16":"${"ab".repeat(32)}"},"sha1":{"0":"${"11".repeat(20)}"}}}`,
    ),
    text.encode(`  sha1:\n    0 : 0x${"00".repeat(20)}\n  sha256:\n    7 : 0x${"AB".repeat(32)}\n`),
  ]);
});
test("public key files (TPM2B_PUBLIC, TPMT_PUBLIC, PEM, DER) and AK/EK checks", () => {
  total(
    (b) => {
      const k = loadPublicKey(b);
      if (k.public) {
        checkAkPublic(k.public.value);
        checkEkPublic(k.public.value);
      }
    },
    [...akPubs, ...ekPubs, ...tpmtPublics, ...pemSeeds],
  );
});
test("verifyQuote on hostile quote and signature bytes returns a verdict", () => {
  const ak = decode(S.TPM2B_PUBLIC_RAW, akPubs[0]!);
  const pcrs = readPcrFile(pcrFiles[0]!).values;
  fc.assert(
    fc.property(inputs(msgs), inputs(sigs), (quoted, signature) => {
      const v = verifyQuote({ ak, quoted, signature, nonce: new Uint8Array(16), pcrs });
      assert.equal(typeof v.ok, "boolean");
      if (v.ok) assert.deepEqual(quoted, msgs[0]);
    }),
    { numRuns: RUNS },
  );
});
test("command responses: every command spec's unmarshaller on hostile TPM responses", () => {
  const specs = Object.values(C) as CommandSpec<unknown, unknown>[];
  fc.assert(
    fc.property(
      fc.constantFrom(...specs),
      fc.constantFrom("none", "password", "hmac", "hmac-encrypt"),
      inputs(responses, 400),
      (spec, kind, rsp) => {
        const zero = () => new Uint8Array(32);
        const session =
          kind === "password"
            ? new PasswordSession()
            : kind === "hmac"
              ? new HmacSession(0x02000000, TPM_ALG.SHA256, zero(), zero)
              : new HmacSession(0x02000000, TPM_ALG.SHA256, zero(), zero, {
                  aesKeyBits: 128,
                  encrypt: true,
                  sessionKey: zero(),
                });
        const sessions = kind !== "none" && spec.handles > 0 ? [session] : [];
        const handles = Array.from({ length: spec.handles }, () => ({ handle: 0x40000001 }));
        try {
          unmarshalResponse(spec, handles, sessions, rsp);
        } catch (e) {
          if (!isTpmError(e)) throw e;
        }
      },
    ),
    { numRuns: RUNS },
  );
});
test("response codes: every 32-bit value decodes to a name", () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffffffff }), (rc) => {
      const info = decodeResponseCode(rc);
      assert.match(info.name, /^TPM_RC_/);
      if (info.format === 1)
        assert.ok([info.handle, info.parameter, info.session].filter((x) => x !== undefined).length <= 1);
    }),
    { numRuns: RUNS },
  );
});

/**
 * Replays the transcript recorded from a real swtpm (test/vectors/tpm/transcripts/) through the
 * in-memory transport: the client issues byte-identical commands, HMAC session responses verify,
 * the quote verifies, and any altered response or command is caught.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { readFileSync } from "node:fs";
import { Tpm } from "../../src/tpm/client.js";
import { tpmCommandChannel, type TpmCommandMessage } from "../../src/tpm/command.js";
import { TPM_PT } from "../../src/tpm/constants.js";
import { ReplayTransport, type Transcript } from "../../src/tpm/transport/mock.js";
import { verifyQuote } from "../../src/tpm/verify/quote.js";
import { repoPath } from "../helpers/paths.js";
import {
  seededRandom,
  transcriptScript,
  TRANSCRIPT_NONCE,
  TRANSCRIPT_SECRET,
} from "../helpers/tpm-transcript.js";

const transcript = JSON.parse(
  readFileSync(repoPath("test/vectors/tpm/transcripts/session.json"), "utf8"),
) as Transcript;

test("the recorded session replays byte for byte and its results verify", async () => {
  const replay = new ReplayTransport(transcript);
  const r = await transcriptScript(new Tpm(replay, { random: seededRandom("bulwark-transcript") }));
  assert.equal(replay.complete, true);
  assert.equal(r.props.get(TPM_PT.FAMILY_INDICATOR), 0x322e3000);
  assert.deepEqual(r.unsealedHmac, TRANSCRIPT_SECRET);
  assert.deepEqual(r.unsealedPw, TRANSCRIPT_SECRET);
  const v = verifyQuote({
    ak: r.akPublic,
    quoted: r.quote.quoted,
    signature: r.quote.signature,
    nonce: TRANSCRIPT_NONCE,
    pcrs: r.pcrs.values,
    expectedSelection: r.sel,
  });
  assert.equal(v.ok, true, JSON.stringify(v.findings));
});

test("bulwark:tpm:command reports every exchange with codes and timings, never parameters", async () => {
  const seen: TpmCommandMessage[] = [];
  const onMessage = (m: unknown) => void seen.push(m as TpmCommandMessage);
  assert.equal(tpmCommandChannel.name, "bulwark:tpm:command");
  assert.equal(tpmCommandChannel.hasSubscribers, false);
  subscribe("bulwark:tpm:command", onMessage);
  try {
    await transcriptScript(
      new Tpm(new ReplayTransport(transcript), { random: seededRandom("bulwark-transcript") }),
    );
  } finally {
    unsubscribe("bulwark:tpm:command", onMessage);
  }
  assert.equal(seen.length, transcript.entries.length);
  for (const [i, m] of seen.entries()) {
    const entry = transcript.entries[i]!;
    assert.deepEqual(Object.keys(m).sort(), [
      "attempt",
      "command",
      "commandCode",
      "durationMs",
      "responseCode",
    ]);
    assert.equal(m.commandCode, parseInt(entry.command.slice(12, 20), 16));
    assert.equal(m.responseCode, parseInt(entry.response.slice(12, 20), 16));
    assert.match(m.command, /^TPM2_[A-Za-z_]+$/);
    assert.equal(m.attempt, 1);
    assert.ok(m.durationMs >= 0);
  }
  assert.ok(seen.some((m) => m.command === "TPM2_Unseal"));
});

test("other nonces change the command bytes: TPM_ERR_TRANSCRIPT_MISMATCH names the command", async () => {
  const replay = new ReplayTransport(transcript);
  await assert.rejects(transcriptScript(new Tpm(replay, { random: seededRandom("other") })), (e: unknown) => {
    assert.equal((e as { code: string }).code, "TPM_ERR_TRANSCRIPT_MISMATCH");
    return true;
  });
});

test("a response altered in transit fails the HMAC session check (TPM_ERR_RESPONSE_HMAC)", async () => {
  // The first TPM2_Unseal (cc 0x15e) with an HMAC session: flip one byte of its returned data.
  const idx = transcript.entries.findIndex((e) => e.command.slice(12, 20) === "0000015e");
  assert.ok(idx > 0);
  const entries = transcript.entries.map((e, i) => {
    if (i !== idx) return e;
    const b = Buffer.from(e.response, "hex");
    b[20] = (b[20] ?? 0) ^ 0x01; // inside the unsealed data (after header and parameterSize, TPM2B size)
    return { ...e, response: b.toString("hex") };
  });
  const replay = new ReplayTransport({ ...transcript, entries });
  await assert.rejects(transcriptScript(new Tpm(replay, { random: seededRandom("bulwark-transcript") })), {
    code: "TPM_ERR_RESPONSE_HMAC",
  });
});

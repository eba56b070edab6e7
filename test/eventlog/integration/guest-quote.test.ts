/**
 * The Host Guardian Service's path, end to end with a real TPM quote: inside the guest,
 * tpm2-tools creates an EK and an AK and quotes PCRs 0-9 and 14 (sha256) over a nonce; on the
 * host, src/tpm's verifyQuote checks the quote with PCR values taken from OUR replay of the
 * guest's event log. The quote's pcrDigest matching proves the replay equals what the TPM signed;
 * the same values then bind the log's facts. A log with one digest changed fails the quote.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { decode } from "../../../src/core/codec.js";
import { bootGuest } from "../../../src/lab/boot.js";
import { ensureGuestImage } from "../../../src/lab/guest-image.js";
import {
  boundFacts,
  byBankName,
  EventType,
  parseEventLog,
  replayEventLog,
  replayedPcrValues,
  verifyEventLog,
} from "../../../src/eventlog/index.js";
import { TPM2B_PUBLIC_RAW } from "../../../src/tpm/structures.js";
import { verifyQuote } from "../../../src/tpm/verify/quote.js";

const QUOTED = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 14];

function block(text: string, name: string): Uint8Array {
  const m = new RegExp(`^${name}=([A-Za-z0-9+/=]+)$`, "m").exec(text);
  assert.ok(m, `${name} missing from the guest's output:\n${text}`);
  return new Uint8Array(Buffer.from(m[1]!, "base64"));
}

test(
  "guest TPM quote verifies against our replay of the guest's event log",
  { timeout: 900_000 },
  async () => {
    const nonce = randomBytes(20);
    const img = await ensureGuestImage("tpm2tools");
    const script = [
      "set -e",
      "cd /tmp",
      "tpm2_createek -c ek.ctx -G rsa -u ek.pub >/dev/null",
      "tpm2_createak -C ek.ctx -c ak.ctx -G rsa -g sha256 -s rsassa -u ak.pub -n ak.name >/dev/null",
      `tpm2_quote -c ak.ctx -l sha256:${QUOTED.join(",")} -q ${nonce.toString("hex")} -m q.msg -s q.sig -g sha256 >/dev/null`,
      'echo "AKPUB=$(base64 -w0 ak.pub)"',
      'echo "QUOTE=$(base64 -w0 q.msg)"',
      'echo "SIG=$(base64 -w0 q.sig)"',
    ].join("\n");
    const r = await bootGuest({ disk: img.disk, tpm: true, timeoutMs: 600_000, script });
    assert.equal(r.scriptExitCode, 0, r.scriptOutput ?? r.serial.slice(-2000));
    assert.ok(r.eventLog, "the guest printed its event log");
    const out = r.scriptOutput ?? "";
    const ak = decode(TPM2B_PUBLIC_RAW, block(out, "AKPUB"));
    const quoted = block(out, "QUOTE");
    const signature = block(out, "SIG");

    const log = parseEventLog(r.eventLog);
    const selection = new Map([["sha256", QUOTED]]);
    const replayed = replayedPcrValues(replayEventLog(log), selection);
    const q = verifyQuote({ ak, quoted, signature, nonce, pcrs: replayed });
    assert.equal(q.ok, true, JSON.stringify(q.findings, null, 1));
    assert.ok(q.passed.includes("quote.pcrDigest"), `checks passed: ${q.passed.join(", ")}`);
    assert.ok(q.passed.includes("quote.signature"));

    const v = verifyEventLog(log, { pcrs: byBankName(replayed), requireSecureBoot: true });
    assert.equal(v.ok, true, JSON.stringify(v.findings, null, 1));
    assert.deepEqual(v.boundPcrs, QUOTED);
    const facts = boundFacts(v);
    assert.equal(facts.secureBoot, true);
    assert.equal(facts.kernelCommandLines.length, 1);
    assert.equal(facts.bootApplications.length, 4);

    // One changed digest (grub's image measurement in PCR 4): the quote no longer matches the log.
    const grub = log.events.filter((e) => e.eventType === EventType.EV_EFI_BOOT_SERVICES_APPLICATION)[1]!;
    const forged = new Uint8Array(r.eventLog);
    const d = grub.digests.find((x) => x.bank === "sha256")!;
    const at = grub.offset + (d.digest.byteOffset - grub.raw.byteOffset);
    forged[at] = forged[at]! ^ 0x80;
    const bad = verifyQuote({
      ak,
      quoted,
      signature,
      nonce,
      pcrs: replayedPcrValues(replayEventLog(parseEventLog(forged)), selection),
    });
    assert.equal(bad.ok, false);
    assert.ok(bad.findings.some((f) => f.id === "quote.pcrDigest"));
  },
);

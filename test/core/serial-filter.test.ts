/** The demo's serial stream: no terminal control sequences reach the operator, the log is summarised. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { serialFilter } from "../../src/cli/serial-filter.js";
import { markers } from "../../src/lab/guest-init.js";
import { repoPath } from "../helpers/paths.js";

function run(chunks: string[]): string {
  let out = "";
  const f = serialFilter((t) => (out += t));
  for (const c of chunks) f(c);
  return out;
}

test("firmware escapes and box bytes are dropped; text survives, split at cursor moves", async () => {
  const serial = await readFile(repoPath("test/vectors/serial/shim-sbat-refusal.txt"), "utf8");
  // Fed in small pieces, as a pipe delivers it.
  const chunks: string[] = [];
  for (let i = 0; i < serial.length; i += 37) chunks.push(serial.slice(i, i + 37));
  const out = run([...chunks, "\n"]);
  // eslint-disable-next-line no-control-regex
  assert.doesNotMatch(out, /[\x1b\ufffd]/);
  assert.match(out, /^BdsDxe: starting Boot0001 "UEFI Misc Device"/m);
  assert.match(out, /^\s*Verification failed: \(0x1A\) Security Violation$/m);
});

test("the base64 event log becomes one line; lines around it pass", () => {
  const log = Array.from({ length: 12 }, () => "QUJD".repeat(19)).join("\r\n");
  const out = run([
    `BULWARK-READY\r\n${markers.eventLogBegin}\r\n${log.slice(0, 50)}`,
    `${log.slice(50)}\r\n${markers.eventLogEnd}\r\nBULWARK-DONE\r\n`,
  ]);
  assert.equal(out, "BULWARK-READY\n[TCG event log: 12 lines of base64, summarised below]\nBULWARK-DONE\n");
});

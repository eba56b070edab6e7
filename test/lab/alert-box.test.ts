/**
 * shim reports some refusals in a modal box that waits for a key press; the boot supervisor must
 * read its message off the serial console instead of waiting out its timeout.
 * The vector is the serial output of a real boot: OVMF + Debian's shim with an SbatLevel that
 * revokes Debian's grub (test/integration/uefi-secureboot.test.ts boots it live).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { alertBoxMessage } from "../../src/lab/boot.js";
import { repoPath } from "../helpers/paths.js";

test("shim's alert box: the message is read from the captured serial output", async () => {
  const serial = await readFile(repoPath("test/vectors/serial/shim-sbat-refusal.txt"), "utf8");
  assert.equal(alertBoxMessage(serial), "Verification failed: (0x1A) Security Violation");
  // Before the OK button is drawn there is no dialog yet.
  assert.equal(alertBoxMessage(serial.slice(0, serial.indexOf(" OK "))), null);
});

test("an alert with unfamiliar wording is still recognised", async () => {
  const serial = await readFile(repoPath("test/vectors/serial/shim-sbat-refusal.txt"), "utf8");
  const other = serial.replace(
    "Verification failed: (0x1A) Security Violation",
    "Could not create MokListXRT: Out of Resources ",
  );
  assert.equal(alertBoxMessage(other), "Could not create MokListXRT: Out of Resources");
});

test("ordinary boot output is not an alert", () => {
  assert.equal(alertBoxMessage("BdsDxe: starting Boot0001\r\nLinux version 6.1\r\nBULWARK-READY\r\n"), null);
});

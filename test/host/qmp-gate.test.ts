/**
 * The QMP gate as a table (hardening issue 11, item 1): every command has one class, the allow-
 * lists follow from the classes, an encryption-on VM refuses every command that could write its
 * state or memory anywhere (snapshot-save first of all), shielded is stricter, and a command no
 * one classified is refused. The real QEMU's own list is checked in
 * test/integration/vm-shield.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  checkQmpCommand,
  classifyQmpCommand,
  encryptedAllowList,
  memoryReadingCommands,
  qmpClasses,
  qmpCommandClass,
  shieldedAllowList,
  type QmpGateSettings,
} from "../../src/host/vm/qmp-gate.js";
import { codeOf } from "../helpers/errors.js";

const vm = (policy: QmpGateSettings["security"]["policy"], encrypt = false): QmpGateSettings => ({
  name: "v",
  security: { policy, encryptStateAndMigration: encrypt },
});

test("every classified command has exactly one class that says why", () => {
  assert.ok(qmpCommandClass.size > 200);
  for (const [name, k] of qmpCommandClass) assert.ok(qmpClasses[k], name);
  for (const why of Object.values(qmpClasses)) assert.ok(why.length > 30);
});

test("encryption on: an allow-list of status, power and host metadata", () => {
  for (const settings of [vm("EncryptionSupported"), vm("None", true)]) {
    for (const cmd of [
      "snapshot-save",
      "snapshot-load",
      "human-monitor-command",
      "migrate",
      "blockdev-backup",
      "drive-mirror",
      "block-export-add",
      "object-add",
      "qom-set",
      "getfd",
      "x-query-ramblock",
      "some-future-command",
      ...memoryReadingCommands,
    ]) {
      assert.equal(
        codeOf(() => checkQmpCommand(settings, cmd)),
        "VM_ERR_QMP_REFUSED",
        cmd,
      );
    }
    for (const cmd of encryptedAllowList)
      assert.equal(
        codeOf(() => checkQmpCommand(settings, cmd)),
        "OK",
        cmd,
      );
  }
  for (const cmd of encryptedAllowList) {
    assert.ok(["status", "power", "metadata"].includes(classifyQmpCommand(cmd) ?? ""), cmd);
  }
});

test("shielded is stricter; policy None lets the owner do anything", () => {
  for (const cmd of qmpCommandClass.keys()) {
    const shielded = codeOf(() => checkQmpCommand(vm("Shielded", true), cmd)) === "OK";
    assert.equal(shielded, shieldedAllowList.includes(cmd), cmd);
    if (shielded) assert.ok(encryptedAllowList.includes(cmd), cmd);
    assert.equal(
      codeOf(() => checkQmpCommand(vm("None"), cmd)),
      "OK",
      cmd,
    );
  }
  assert.equal(
    codeOf(() => checkQmpCommand(vm("Shielded", true), "query-block")),
    "VM_ERR_QMP_REFUSED",
  );
  assert.equal(
    codeOf(() => checkQmpCommand(vm("Shielded", true), "some-future-command")),
    "VM_ERR_QMP_REFUSED",
  );
});

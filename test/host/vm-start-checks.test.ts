/**
 * What a VM start checks before any key is released, done once: the key files are read and
 * decoded once, the owner's signed settings are checked over them, and the key source gets those
 * very bytes with what was verified about them (no second read, decode or signature check). Also
 * the NVRAM's Secure Boot state, now derived without describing every certificate: it must agree
 * with the full report on every store. No VM boots.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { hostContext } from "../../src/host/index.js";
import { spawnChild } from "../../src/host/children.js";
import { newVmConfig } from "../../src/host/vm/config.js";
import type { UnlockRequest, VmContext } from "../../src/host/vm/context.js";
import { distinctCopies, readVmKeyFiles, readVmKeyFilesIfAny } from "../../src/host/vm/key-files.js";
import { unlockChecked, unlockVm, zeroSecrets } from "../../src/host/vm/keys.js";
import { createVm } from "../../src/host/vm/lifecycle.js";
import { buildNvram } from "../../src/host/vm/nvram.js";
import { verifySettingsOver } from "../../src/host/vm/security-statement.js";
import { setFirmware, setKeyProtector, setTpm } from "../../src/host/vm/settings.js";
import { Guids } from "../../src/uefi/guid.js";
import { secureBootVarGuid } from "../../src/uefi/variables.js";
import { reportVarStore, secureBootState } from "../../src/uefi/varstore-report.js";
import {
  deleteVariable,
  encodeVarStore,
  getVariable,
  parseVarStore,
  setVariable,
  type Edk2VarStore,
} from "../../src/uefi/varstore.js";
import { rejectsWith } from "../helpers/errors.js";
import { uefiVector } from "../helpers/uefi-varstore-fixtures.js";

const VM = "checked";
let root: string;
let ctx: VmContext;
/** Every request the key source got. */
const requests: UnlockRequest[] = [];

before(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "bulwark-start-checks-"));
  const base = hostContext(root);
  ctx = {
    ...base,
    unlock: (r) => {
      requests.push(r);
      return base.unlock(r);
    },
  };
  await createVm(ctx, newVmConfig({ name: VM }));
  await setKeyProtector(ctx, VM, { kind: "new-local" });
  await setTpm(ctx, VM, true);
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("a start's key checks, once", () => {
  it("the key source gets the files the settings were checked over, their owner signature already verified", async () => {
    const p = ctx.store.paths(VM);
    zeroSecrets(await unlockVm(ctx, VM)); // writes the last known good copy
    requests.length = 0;
    const files = await readVmKeyFiles(p);
    // The last known good copy is the current one byte for byte: decoded once, checked once.
    assert.ok(files.current.model);
    assert.equal(files.lastKnownGood?.model, files.current.model);
    assert.equal(distinctCopies(files).length, 1);
    assert.equal(files.checked.ownerSignatures.size, 0);
    const check = await verifySettingsOver(await ctx.store.load(VM), p, files);
    assert.equal(check.kind, "verified");
    assert.equal(files.checked.ownerSignatures.size, 1, "the settings check verified the owner signature");
    zeroSecrets(await unlockChecked(ctx, VM, files, check));
    assert.equal(requests.length, 1);
    assert.equal(requests[0]?.files, files, "the very files checked, not a second read");
    assert.equal(files.checked.ownerSignatures.size, 1, "the unwrap found it verified");
  });

  it("a last known good copy that differs is decoded and checked on its own", async () => {
    const p = ctx.store.paths(VM);
    const lkg = await readFile(p.keyProtectorLastKnownGood);
    try {
      const other = Buffer.from(lkg);
      other.writeUInt8((other.at(-1) as number) ^ 1, other.length - 1); // its MAC: still decodes, a distinct copy
      await writeFile(p.keyProtectorLastKnownGood, other);
      const files = await readVmKeyFiles(p);
      assert.notEqual(files.lastKnownGood?.model, files.current.model);
      assert.equal(distinctCopies(files).length, 2);
      zeroSecrets(await unlockVm(ctx, VM));
    } finally {
      await writeFile(p.keyProtectorLastKnownGood, lkg);
    }
  });

  it("no key source is asked without checked key files", async () => {
    const p = ctx.store.paths(VM);
    requests.length = 0;
    await rejectsWith(
      unlockChecked(ctx, VM, undefined, { kind: "unprotected" }),
      "VM_ERR_KEY_PROTECTOR_REQUIRED",
    );
    const files = await readVmKeyFiles(p);
    await rejectsWith(
      unlockChecked(ctx, VM, files, { kind: "unprotected" }),
      "VM_ERR_KEY_PROTECTOR_REQUIRED",
    );
    assert.equal(requests.length, 0);
    const bare = hostContext(path.join(root, "bare"));
    await createVm(bare, newVmConfig({ name: "bare" }));
    assert.equal(await readVmKeyFilesIfAny(bare.store.paths("bare")), undefined);
    await rejectsWith(readVmKeyFiles(bare.store.paths("bare")), "VM_ERR_KEY_PROTECTOR_REQUIRED");
  });

  it("a child that dies before reading its fd-3 secret does not take this process down", async () => {
    // `true` never reads fd 3: the pipe is reset under a pending write of the secret.
    const child = spawnChild("true", [], { secretFd3: "ab".repeat(512 * 1024) });
    assert.equal((await child.exited).code, 0);
    await new Promise((r) => setTimeout(r, 50)); // an unhandled 'error' would surface by now
  });
});

describe("the NVRAM's Secure Boot state without describing its certificates", () => {
  const PK_GUID = secureBootVarGuid("PK") as string;

  function both(store: Edk2VarStore): string {
    const s = secureBootState(store);
    assert.equal(s, reportVarStore(store, 0).secureBoot, "agrees with the full report");
    return s;
  }

  function withPk(store: Edk2VarStore, data: Uint8Array): Edk2VarStore {
    const pk = getVariable(store, "PK", PK_GUID) as { attributes: number };
    return setVariable(store, { name: "PK", guid: PK_GUID, attributes: pk.attributes, data });
  }

  it("agrees with reportVarStore on real stores, templates, and a PK removed, empty or malformed", async () => {
    for (const v of ["ovmf-4m-ms-after-boot.fd.gz", "ovmf-4m-bulwark-shielded-after-boot.fd.gz"]) {
      assert.equal(both(parseVarStore(uefiVector(v))), "enabled", v);
    }
    const on = parseVarStore(await buildNvram(root, await ctx.store.load(VM)));
    assert.equal(both(on), "enabled");
    await setFirmware(ctx, VM, { secureBoot: false });
    const off = parseVarStore(await buildNvram(root, await ctx.store.load(VM)));
    await setFirmware(ctx, VM, { secureBoot: true });
    assert.equal(both(off), reportVarStore(off, 0).secureBoot);
    assert.equal(both(deleteVariable(on, "PK", PK_GUID)), "setup-mode");
    assert.equal(both(withPk(on, new Uint8Array(0))), "setup-mode");
    assert.equal(both(withPk(on, new Uint8Array([1, 2, 3, 4, 5]))), "setup-mode");
    const sbe = Guids.EFI_SECURE_BOOT_ENABLE_DISABLE;
    const disabled = setVariable(on, {
      name: "SecureBootEnable",
      guid: sbe,
      attributes: 3,
      data: new Uint8Array([0]),
    });
    assert.equal(both(parseVarStore(encodeVarStore(disabled))), "disabled");
  });
});

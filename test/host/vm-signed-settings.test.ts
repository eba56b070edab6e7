/**
 * A shielded VM's promise on disk (hardening issue 11, item 4), on a granted host: a host that
 * runs the VM with a guardian the owner granted, but without the owner's key. The owner's signed
 * settings decide; config.json, nvram.fd, the statement and the key protector are edited as an
 * administrator of that host (or of the storage the VM lives on) could edit them, and no key
 * source is asked, no swtpm is started. No VM boots: every refusal happens before QEMU.
 */
import { after, before, beforeEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { hostContext } from "../../src/host/index.js";
import { newVmConfig, type VmConfig } from "../../src/host/vm/config.js";
import type { KeyUnlock, VmContext } from "../../src/host/vm/context.js";
import { unlockVm, zeroSecrets } from "../../src/host/vm/keys.js";
import { createVm, startVm } from "../../src/host/vm/lifecycle.js";
import { buildNvram } from "../../src/host/vm/nvram.js";
import { differences, nvramFacts, settingsOf, statementPaths } from "../../src/host/vm/security-statement.js";
import {
  setFirmware,
  setKeyProtector,
  setSecurityPolicy,
  setTpm,
  signSettings,
} from "../../src/host/vm/settings.js";
import { createGuardian, publicGuardian } from "../../src/protector/guardian.js";
import { createKeyProtector, grantGuardian, parseKeyProtector } from "../../src/protector/key-protector.js";
import { parseSignedSettings, signSettings as signRaw } from "../../src/protector/signed-settings.js";
import { rejectsWith } from "../helpers/errors.js";
import { repoPath } from "../helpers/paths.js";

const VM = "guarded";
let root: string;
let owner: VmContext;
/** The granted host, its key source counted: a refusal must come before any key is asked for. */
let granted: VmContext;
let unlockCalls = 0;
const pristine = new Map<string, Buffer>();

function counting(ctx: VmContext): VmContext {
  const real: KeyUnlock = ctx.unlock;
  return {
    ...ctx,
    unlock: (r) => {
      unlockCalls++;
      return real(r);
    },
  };
}

const paths = () => granted.store.paths(VM);
const files = () => {
  const p = paths();
  return [p.config, p.nvram, p.keyProtector, p.keyProtectorLastKnownGood, statementPaths(p).file];
};

async function editConfig(patch: (c: VmConfig) => VmConfig): Promise<void> {
  const c = JSON.parse(await readFile(paths().config, "utf8")) as VmConfig;
  await writeFile(paths().config, JSON.stringify(patch(c), null, 2));
}

/** startVm refuses with `code`, asks no key source, starts no swtpm and leaves the key files as they were. */
async function refusedBeforeAnyKey(code: string): Promise<Record<string, unknown>> {
  const lkg = await readFile(paths().keyProtectorLastKnownGood);
  unlockCalls = 0;
  const details = await rejectsWith(startVm(granted, VM), code);
  assert.equal(unlockCalls, 0, "no key source was asked");
  assert.equal(existsSync(paths().swtpmPid), false, "no swtpm was started");
  assert.equal(existsSync(paths().runDir), false, "nothing was prepared to run");
  assert.deepEqual(await readFile(paths().keyProtectorLastKnownGood), lkg, "no unwrap rewrote the cache");
  return details;
}

function cliShow(stateDir: string): { json: Record<string, unknown>; text: string } {
  const bin = repoPath("dist/src/cli/main.js");
  const j = spawnSync(process.execPath, [bin, "vm", "show", VM, "--state-dir", stateDir, "--json"], {
    encoding: "utf8",
  });
  const t = spawnSync(process.execPath, [bin, "vm", "show", VM, "--state-dir", stateDir], {
    encoding: "utf8",
  });
  return { json: JSON.parse(j.stdout) as Record<string, unknown>, text: t.stdout };
}

before(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "bulwark-signed-settings-"));
  owner = hostContext(path.join(root, "owner"));
  const grantedDir = path.join(root, "granted");
  granted = counting(hostContext(grantedDir));
  await createVm(owner, newVmConfig({ name: VM }));
  await setKeyProtector(owner, VM, { kind: "new-local" });
  await setSecurityPolicy(owner, VM, { shielded: true });
  // Move the VM to the granted host; the owner grants that host's guardian on the moved copy.
  const from = owner.store.paths(VM);
  await cp(from.dir, paths().dir, { recursive: true });
  const hostGuardian = publicGuardian(await granted.guardians.untrustedGuardian());
  const ownerGuardian = await owner.guardians.untrustedGuardian();
  const kp = grantGuardian(new Uint8Array(await readFile(paths().keyProtector)), hostGuardian, {
    owner: ownerGuardian,
  });
  await writeFile(paths().keyProtector, kp);
  await writeFile(paths().keyProtectorLastKnownGood, kp);
  for (const f of files()) pristine.set(f, await readFile(f));
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

beforeEach(async () => {
  for (const [f, b] of pristine) await writeFile(f, b);
  await rm(paths().runDir, { recursive: true, force: true });
});

describe("signed settings on a granted host", () => {
  it("untouched, the granted host verifies them and its guardian releases the keys", async () => {
    assert.equal(
      (cliShow(granted.store.stateDir).json["security"] as { signedSettings: { status: string } })
        .signedSettings.status,
      "verified",
    );
    unlockCalls = 0;
    zeroSecrets(await unlockVm(granted, VM));
    assert.equal(unlockCalls, 1);
  });

  it("config.json edited while off (policy None, console and gdb stub on) is refused before any key", async () => {
    await editConfig((c) => ({
      ...c,
      security: { policy: "None", encryptStateAndMigration: false },
      console: true,
      debugStub: true,
    }));
    const d = await refusedBeforeAnyKey("VM_ERR_SETTINGS_TAMPERED");
    assert.deepEqual(d["differences"], ["policy", "encryptStateAndMigration", "console", "debugStub"]);
    // Every key path checks, not only start: the HGS and local key sources sit behind unlockVm.
    await rejectsWith(unlockVm(granted, VM), "VM_ERR_SETTINGS_TAMPERED");
    assert.equal(unlockCalls, 0);
  });

  it("each signed setting is covered: one edit at a time is refused, naming it", async () => {
    const edits: [string, (c: VmConfig) => VmConfig][] = [
      ["policy", (c) => ({ ...c, security: { ...c.security, policy: "EncryptionSupported" } })],
      [
        "tpm",
        (c) => ({
          ...c,
          security: { policy: "None", encryptStateAndMigration: true },
          tpm: { enabled: false },
        }),
      ],
      ["template", (c) => ({ ...c, firmware: { ...c.firmware, template: "MicrosoftWindows" } })],
      [
        "shares",
        (c) => ({ ...c, security: { ...c.security, policy: "None" }, shares: [{ tag: "h", path: "/" }] }),
      ],
      ["guestAgent", (c) => ({ ...c, security: { ...c.security, policy: "None" }, guestAgent: true })],
      ["vmId", (c) => ({ ...c, id: "00000000-0000-4000-8000-000000000000" })],
    ];
    for (const [setting, edit] of edits) {
      await writeFile(paths().config, pristine.get(paths().config) as Buffer);
      await editConfig(edit);
      const d = await refusedBeforeAnyKey("VM_ERR_SETTINGS_TAMPERED");
      assert.ok((d["differences"] as string[]).includes(setting), `${setting}: ${String(d["differences"])}`);
    }
  });

  it("nvram.fd swapped for a Secure-Boot-off store is refused, and vm show says so", async () => {
    const c = JSON.parse(await readFile(paths().config, "utf8")) as VmConfig;
    const off = await buildNvram(granted.store.stateDir, {
      ...c,
      firmware: { ...c.firmware, secureBoot: false },
    });
    await writeFile(paths().nvram, off);
    const d = await refusedBeforeAnyKey("VM_ERR_SETTINGS_TAMPERED");
    assert.match(String(d["differences"]), /nvram Secure Boot state \(disabled, signed enabled\)/);
    const shown = cliShow(granted.store.stateDir);
    const sec = shown.json["security"] as { signedSettings: { status: string; nvramSecureBoot: string } };
    assert.equal(sec.signedSettings.status, "tampered");
    assert.equal(sec.signedSettings.nvramSecureBoot, "disabled");
    assert.match(shown.text, /Secure Boot: +Off \(nvram\.fd: disabled; config\.json says On\)/);
    assert.doesNotMatch(shown.text, /Secure Boot: +On/);
    assert.match(shown.text, /Signed settings: +TAMPERED/);
  });

  it("nvram.fd deleted (so a start would write a fresh one) or garbled is refused", async () => {
    await rm(paths().nvram);
    assert.match(
      String((await refusedBeforeAnyKey("VM_ERR_SETTINGS_TAMPERED"))["differences"]),
      /unreadable/,
    );
    await writeFile(paths().nvram, Buffer.alloc(540672, 0xff));
    assert.match(
      String((await refusedBeforeAnyKey("VM_ERR_SETTINGS_TAMPERED"))["differences"]),
      /unreadable/,
    );
  });

  it("another template's keys in nvram.fd (same Secure Boot state) are refused", async () => {
    const c = JSON.parse(await readFile(paths().config, "utf8")) as VmConfig;
    const other = await buildNvram(granted.store.stateDir, {
      ...c,
      firmware: { ...c.firmware, template: "MicrosoftWindows" },
    });
    await writeFile(paths().nvram, other);
    const d = await refusedBeforeAnyKey("VM_ERR_SETTINGS_TAMPERED");
    assert.match(String(d["differences"]), /nvram db/);
  });

  it("the statement edited, deleted, or taken from another VM is refused", async () => {
    const file = statementPaths(paths()).file;
    const bytes = new Uint8Array(pristine.get(file) as Buffer);
    const flipped = Uint8Array.from(bytes);
    flipped[40] = (flipped[40] as number) ^ 1; // inside the payload
    await writeFile(file, flipped);
    assert.equal(
      (await refusedBeforeAnyKey("VM_ERR_SETTINGS_TAMPERED"))["reason"],
      "PROTECTOR_ERR_SETTINGS_SIGNATURE",
    );
    await writeFile(file, bytes.subarray(0, bytes.length - 5));
    assert.equal(
      (await refusedBeforeAnyKey("VM_ERR_SETTINGS_TAMPERED"))["reason"],
      "PROTECTOR_ERR_SETTINGS_FORMAT",
    );
    // Another VM of the same owner: same signer, other protector.
    await createVm(owner, newVmConfig({ name: "other" }));
    await setKeyProtector(owner, "other", { kind: "new-local" });
    await setTpm(owner, "other", true);
    await writeFile(file, await readFile(statementPaths(owner.store.paths("other")).file));
    assert.equal(
      (await refusedBeforeAnyKey("VM_ERR_SETTINGS_TAMPERED"))["reason"],
      "PROTECTOR_ERR_SETTINGS_PROTECTOR",
    );
    // No statement at all (a VM made before statements existed): refused, the owner must sign.
    await rm(file);
    const e = await refusedBeforeAnyKey("VM_ERR_SETTINGS_UNSIGNED");
    assert.ok(e);
    assert.equal(
      (cliShow(granted.store.stateDir).json["security"] as { signedSettings: { status: string } })
        .signedSettings.status,
      "unsigned",
    );
    await rejectsWith(signSettings(granted, VM), "VM_ERR_OWNER_KEY_REQUIRED");
  });

  it("a key protector forged under another owner, with settings that owner signed, is refused", async () => {
    // An attacker's owner key signs weak settings for a protector of its own naming this host;
    // the genuine last-known-good copy is still there, so a key source could fall back to it.
    const attacker = createGuardian("attacker", { signingKeyType: "p256" });
    const forged = createKeyProtector({
      owner: attacker,
      guardians: [publicGuardian(await granted.guardians.untrustedGuardian())],
    });
    forged.transportKey.key.fill(0);
    await writeFile(paths().keyProtector, forged.keyProtector);
    await editConfig((c) => ({
      ...c,
      security: { policy: "None", encryptStateAndMigration: false },
      console: true,
    }));
    const c = JSON.parse(await readFile(paths().config, "utf8")) as VmConfig;
    const weak = settingsOf(c, nvramFacts(new Uint8Array(await readFile(paths().nvram))));
    await writeFile(
      statementPaths(paths()).file,
      signRaw(parseKeyProtector(forged.keyProtector), attacker, Buffer.from(JSON.stringify(weak))),
    );
    // The forged protector has its own id, so the attacker's statement is consistent with it;
    // what refuses is the key source: the VM secrets open only through the genuine copy they are
    // sealed for, and a current protector of another id is refused right after (the opened
    // secrets are zeroized; nothing starts). A forged copy of the genuine id would need the
    // genuine owner's signature over the statement: the genuine last-known-good copy is checked.
    unlockCalls = 0;
    await rejectsWith(startVm(granted, VM), "PROTECTOR_ERR_FOREIGN_PROTECTOR");
    assert.equal(existsSync(paths().swtpmPid), false, "no swtpm was started");
    assert.equal(existsSync(paths().runDir), false, "nothing was prepared to run");
  });

  it("settings verbs on a non-owner host are refused for any VM with a key protector", async () => {
    await rejectsWith(
      setFirmware(granted, VM, { template: "MicrosoftWindows" }),
      "VM_ERR_OWNER_KEY_REQUIRED",
    );
    await rejectsWith(setSecurityPolicy(granted, VM, { shielded: false }), "VM_ERR_OWNER_KEY_REQUIRED");
    assert.deepEqual(await readFile(paths().config), pristine.get(paths().config));
  });

  it("a plain saved state is not restored into a VM whose owner requires encryption", async () => {
    const p = paths();
    await writeFile(p.savedState, "plain state the host admin wrote");
    await writeFile(p.savedStateMeta, JSON.stringify({ version: 1, encrypted: false, bytes: 32, vmId: "x" }));
    try {
      const d = await refusedBeforeAnyKey("VM_ERR_SETTINGS_TAMPERED");
      assert.deepEqual(d["differences"], ["savedState.encrypted"]);
    } finally {
      await rm(p.savedState, { force: true });
      await rm(p.savedStateMeta, { force: true });
    }
  });
});

describe("signed settings on the owner's host", () => {
  it("each settings verb re-signs; `vm settings sign` signs a VM made before statements", async () => {
    const name = "legacy";
    await createVm(owner, newVmConfig({ name }));
    await setKeyProtector(owner, name, { kind: "new-local" });
    const p = owner.store.paths(name);
    await setTpm(owner, name, true);
    const first = parseSignedSettings(new Uint8Array(await readFile(statementPaths(p).file)));
    assert.equal(JSON.parse(Buffer.from(first.payload).toString()).tpm, true);
    await rm(statementPaths(p).file);
    await rejectsWith(startVm(owner, name), "VM_ERR_SETTINGS_UNSIGNED");
    const r = await signSettings(owner, name);
    assert.deepEqual(r.command, ["bulwark", "vm", "settings", "sign", name]);
    assert.ok(existsSync(statementPaths(p).file));
  });

  it("a guest-applied dbx update (entries only added) still matches; a lost dbx entry does not", () => {
    const signed = {
      ...settingsOf(newVmConfig({ name: "x" }), {
        secureBoot: "enabled",
        PK: "a",
        KEK: "b",
        db: "c",
        dbx: "d1",
        dbxEntries: ["t:1", "t:2"],
      }),
    };
    const withNvram = (dbx: string | null, dbxEntries: string[]) => ({
      ...signed,
      nvram: { ...signed.nvram, dbx, dbxEntries },
    });
    assert.deepEqual(differences(signed, withNvram("d2", ["t:1", "t:2", "t:3"])), []);
    assert.deepEqual(differences(signed, withNvram("d3", ["t:1"])), ["nvram dbx"]);
    assert.deepEqual(differences(signed, withNvram(null, [])), ["nvram dbx"]);
  });
});

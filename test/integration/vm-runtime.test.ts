/**
 * The Gen-2 VM runtime on real QEMU + OVMF + swtpm (TCG): vTPM persistence under a local key
 * protector, no vTPM plaintext on disk, swtpm refusing a wrong key, encrypted save/restore with
 * tamper refusal, kill -9 during save, moving a VM to another host, and the Shielded policy.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash, createPublicKey, randomBytes } from "node:crypto";
import { cp, readdir, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { isBulwarkError } from "../../src/core/errors.js";
import { setNewLocalKeyProtector } from "../../src/host/vm/keys.js";
import { qemuPidOf } from "../../src/host/vm/processes.js";
import { saveVm } from "../../src/host/vm/saved-state.js";
import { startVm, turnOffVm, vmStatus, waitForPowerOff } from "../../src/host/vm/lifecycle.js";
import { repoPath } from "../helpers/paths.js";
import { processAlive } from "../helpers/processes.js";
import {
  createTestVm,
  lastScriptOutput,
  makeTestHost,
  serialLog,
  setGuestScript,
  type TestHost,
} from "../helpers/vm.js";

const bin = repoPath("dist/src/cli/main.js");
function cli(host: TestHost, args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args, "--state-dir", host.dir, "--json"], {
    encoding: "utf8",
  });
  let json: { error?: { code: string; message: string } } & Record<string, unknown> = {};
  try {
    json = JSON.parse(r.stdout) as typeof json;
  } catch {
    // not JSON
  }
  return { status: r.status, json, stdout: r.stdout, stderr: r.stderr };
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name));
  }
  return out;
}

async function filesContaining(dir: string, needle: Buffer): Promise<string[]> {
  const hits: string[] = [];
  for (const f of await filesUnder(dir)) {
    if ((await readFile(f)).includes(needle)) hits.push(f);
  }
  return hits;
}

async function waitForLog(
  host: TestHost,
  name: string,
  re: RegExp,
  timeoutMs: number,
): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = (await serialLog(host, name)).match(re);
    if (m) return m;
    if (Date.now() > deadline)
      throw new Error(
        `timed out waiting for ${re} in the serial log:\n${(await serialLog(host, name)).slice(-1500)}`,
      );
    await sleep(250);
  }
}

const NV_SCRIPT_WRITE = `tpm2_nvdefine 0x1500016 -C o -s 16 -a "ownerread|ownerwrite" && printf bulwark-persist! > /tmp/v && tpm2_nvwrite 0x1500016 -C o -i /tmp/v
tpm2_readpublic -c 0x81010001 -f pem -o /tmp/ek.pem >/dev/null && cat /tmp/ek.pem
`;
const NV_SCRIPT_READ = "tpm2_nvread 0x1500016 -C o -s 16; echo\n";

test("vTPM state persists across boots, is encrypted at rest, and swtpm refuses a wrong key", async () => {
  const host = await makeTestHost();
  try {
    await createTestVm(host, "persist");
    const p = host.ctx.store.paths("persist");
    // Hyper-V's rule: no TPM without a key protector.
    assert.equal(
      cli(host, ["vm", "tpm", "enable", "persist"]).json.error?.code,
      "VM_ERR_KEY_PROTECTOR_REQUIRED",
    );
    assert.equal(cli(host, ["vm", "key-protector", "set", "persist", "--new-local"]).status, 0);
    assert.equal(cli(host, ["vm", "tpm", "enable", "persist"]).status, 0);
    await setGuestScript(host, "persist", NV_SCRIPT_WRITE);
    await startVm(host.ctx, "persist");
    assert.ok(await waitForPowerOff(host.ctx, "persist", 180_000));
    const first = lastScriptOutput(await serialLog(host, "persist")) ?? "";
    const pem = /-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/.exec(first)?.[0];
    assert.ok(pem, `EK public not printed: ${first}`);
    const jwk = createPublicKey(pem).export({ format: "jwk" });
    const modulus = Buffer.from(jwk.n as string, "base64url");
    assert.equal(modulus.length, 256);
    // The EK's modulus is part of the vTPM's NV state: it must not appear in clear in any file.
    assert.deepEqual(await filesContaining(p.dir, modulus), []);
    assert.deepEqual(await filesContaining(p.dir, Buffer.from("bulwark-persist!")), []);

    await setGuestScript(host, "persist", NV_SCRIPT_READ);
    await startVm(host.ctx, "persist");
    assert.ok(await waitForPowerOff(host.ctx, "persist", 180_000));
    assert.match(lastScriptOutput(await serialLog(host, "persist")) ?? "", /bulwark-persist!/);

    // swtpm itself refuses the state with another key.
    const wrong = spawn(
      "swtpm",
      [
        "socket",
        "--tpm2",
        "--tpmstate",
        `dir=${p.tpmDir}`,
        "--ctrl",
        `type=unixio,path=${p.dir}/wrong.sock`,
        "--key",
        "fd=3,mode=aes-256-cbc,format=hex",
        "--flags",
        "not-need-init,startup-clear",
      ],
      { stdio: ["ignore", "pipe", "pipe", "pipe"] },
    );
    (wrong.stdio[3] as NodeJS.WritableStream).end(randomBytes(32).toString("hex"));
    let err = "";
    wrong.stderr?.on("data", (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((res) => {
      const t = setTimeout(() => {
        wrong.kill("SIGKILL");
        res(null);
      }, 20_000);
      wrong.on("exit", (c) => {
        clearTimeout(t);
        res(c);
      });
    });
    assert.notEqual(code, 0);
    assert.match(err, /HMAC|integrity/i);
  } finally {
    await host.cleanup();
  }
});

/** A guest that puts a marker into RAM (decoded from base64, so it exists in clear only in RAM) and ticks. */
function ramMarkerScript(marker: string): string {
  return `M=$(echo ${Buffer.from(marker).toString("base64")} | base64 -d)
i=0; while [ $i -lt 64 ]; do echo "$M" >> /tmp/ram; i=$((i+1)); done
n=0; while true; do n=$((n+1)); echo "tick $n $(md5sum < /tmp/ram | cut -c1-12)"; sleep 1; done
`;
}

const sha256 = async (f: string) =>
  createHash("sha256")
    .update(await readFile(f))
    .digest("hex");

test("encrypted save: no RAM marker on disk, tampering refused with the state intact, restore carries on", async () => {
  const host = await makeTestHost();
  try {
    await createTestVm(host, "saver");
    const p = host.ctx.store.paths("saver");
    await setNewLocalKeyProtector(p, host.ctx.guardians);
    assert.equal(cli(host, ["vm", "tpm", "enable", "saver"]).status, 0);
    assert.equal(
      cli(host, ["vm", "security", "set", "saver", "--encrypt-state-and-migration", "on"]).status,
      0,
    );
    const marker = `BULWARK-RAM-MARKER-${randomBytes(12).toString("hex")}`;
    await setGuestScript(host, "saver", ramMarkerScript(marker));
    await startVm(host.ctx, "saver");
    const before = await waitForLog(host, "saver", /tick 3 ([0-9a-f]{12})/, 180_000);
    const meta = await saveVm(host.ctx, "saver");
    assert.equal(meta.encrypted, true);
    assert.equal((await vmStatus(host.ctx, "saver")).state, "Saved");
    assert.deepEqual(
      await filesContaining(host.dir, Buffer.from(marker)),
      [],
      "the RAM marker must be on no disk file",
    );
    const good = await sha256(p.savedState);

    // A flipped byte is refused and the saved state stays as it was.
    const backup = path.join(host.dir, "saved.bak");
    await cp(p.savedState, backup);
    const bytes = await readFile(p.savedState);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = (bytes[at] as number) ^ 0x01;
    await writeFile(p.savedState, bytes);
    const flipped = await sha256(p.savedState);
    await assert.rejects(
      startVm(host.ctx, "saver"),
      (e: unknown) => isBulwarkError(e) && /^(PROTECTOR|VM)_ERR_/.test(e.code),
    );
    assert.equal(await sha256(p.savedState), flipped, "a refused saved state is left untouched");
    assert.equal(qemuPidOf(p), null, "no QEMU keeps running after a refused restore");
    // Truncated: refused too.
    await cp(backup, p.savedState);
    await truncate(p.savedState, Math.floor((await stat(backup)).size * 0.75));
    await assert.rejects(startVm(host.ctx, "saver"), (e: unknown) => isBulwarkError(e));
    assert.equal((await vmStatus(host.ctx, "saver")).state, "Saved");

    await cp(backup, p.savedState);
    assert.equal(await sha256(p.savedState), good);
    await startVm(host.ctx, "saver");
    const n = Number(/tick (\d+)/.exec(before[0])?.[1]);
    const after = await waitForLog(host, "saver", new RegExp(`tick ${n + 2} ([0-9a-f]{12})`), 120_000);
    assert.equal(after[1], before[1], "guest RAM content survived the round trip");
    const log = await serialLog(host, "saver");
    assert.equal(log.split("BULWARK-READY").length - 1, 1, "the guest carried on; it did not boot again");
    assert.equal((await vmStatus(host.ctx, "saver")).savedState, null);
  } finally {
    await host.cleanup();
  }
});

test("with encryption off the same marker is in the plain saved state (the search can fail)", async () => {
  const host = await makeTestHost();
  try {
    await createTestVm(host, "plain");
    const marker = `BULWARK-RAM-MARKER-${randomBytes(12).toString("hex")}`;
    await setGuestScript(host, "plain", ramMarkerScript(marker));
    await startVm(host.ctx, "plain");
    await waitForLog(host, "plain", /tick 2 /, 180_000);
    const meta = await saveVm(host.ctx, "plain");
    assert.equal(meta.encrypted, false);
    assert.deepEqual(await filesContaining(host.dir, Buffer.from(marker)), [
      host.ctx.store.paths("plain").savedState,
    ]);
  } finally {
    await host.cleanup();
  }
});

test("kill -9 of bulwark during save leaves the VM running or its saved state good", async () => {
  const host = await makeTestHost();
  try {
    await createTestVm(host, "killed", { memoryMiB: 768 });
    const p = host.ctx.store.paths("killed");
    await setNewLocalKeyProtector(p, host.ctx.guardians);
    assert.equal(
      cli(host, ["vm", "security", "set", "killed", "--encrypt-state-and-migration", "on"]).status,
      0,
    );
    await setGuestScript(
      host,
      "killed",
      `dd if=/dev/urandom of=/tmp/fill bs=1M count=160 2>/dev/null\n${ramMarkerScript("x")}`,
    );
    await startVm(host.ctx, "killed");
    await waitForLog(host, "killed", /tick 2 /, 300_000);
    const child = spawn(process.execPath, [bin, "vm", "save", "killed", "--state-dir", host.dir, "--quiet"], {
      stdio: "ignore",
    });
    const deadline = Date.now() + 60_000;
    let killedMidSave = false;
    while (Date.now() < deadline && child.exitCode === null) {
      if ((await readdir(p.dir)).some((f) => f.endsWith(".tmp"))) {
        child.kill("SIGKILL");
        killedMidSave = true;
        break;
      }
      await sleep(5);
    }
    await new Promise((r) => (child.exitCode !== null ? r(null) : child.on("exit", r)));
    await sleep(2000);
    const s = await vmStatus(host.ctx, "killed");
    if (s.state === "Saved") {
      // The save finished before the kill landed: the saved state must be complete and good.
      await startVm(host.ctx, "killed");
      assert.equal((await vmStatus(host.ctx, "killed")).state, "Running");
    } else {
      assert.ok(killedMidSave);
      assert.equal(s.state, "Running", "QEMU resumes the guest when the migration socket dies");
      const pid = qemuPidOf(p);
      assert.ok(pid !== null && processAlive(pid));
      // And a later save works, discarding the interrupted one's temporary file.
      const meta = await saveVm(host.ctx, "killed");
      assert.equal(meta.encrypted, true);
      assert.equal((await readdir(p.dir)).filter((f) => f.endsWith(".tmp")).length, 0);
    }
  } finally {
    await host.cleanup();
  }
});

test("a VM moved to another host does not start until the owner grants that host's guardian", async () => {
  const a = await makeTestHost("bulwark-hostA-");
  const b = await makeTestHost("bulwark-hostB-");
  try {
    await createTestVm(a, "mover");
    await setNewLocalKeyProtector(a.ctx.store.paths("mover"), a.ctx.guardians);
    assert.equal(cli(a, ["vm", "tpm", "enable", "mover"]).status, 0);
    await setGuestScript(a, "mover", NV_SCRIPT_WRITE);
    await startVm(a.ctx, "mover");
    assert.ok(await waitForPowerOff(a.ctx, "mover", 180_000));
    // Move the directory to host B.
    await cp(a.ctx.store.paths("mover").dir, b.ctx.store.paths("mover").dir, { recursive: true });
    await setGuestScript(b, "mover", NV_SCRIPT_READ);
    await b.ctx.guardians.untrustedGuardian();
    await assert.rejects(startVm(b.ctx, "mover"), (e: unknown) => {
      assert.ok(isBulwarkError(e));
      assert.equal(e.code, "PROTECTOR_ERR_NOT_AUTHORIZED");
      assert.match(e.message, /UntrustedGuardian/);
      assert.match(e.message, /grant/);
      return true;
    });
    // Host B exports its guardian; the owner (host A) imports it and grants it on B's copy.
    const exported = path.join(b.dir, "hostB.pem");
    assert.equal(
      spawnSync(process.execPath, [
        bin,
        "guardian",
        "export",
        "UntrustedGuardian",
        "--state-dir",
        b.dir,
        "--out",
        exported,
      ]).status,
      0,
    );
    assert.equal(cli(a, ["guardian", "import", exported, "--name", "hostB"]).status, 0);
    const g = cli(a, [
      "key-protector",
      "grant",
      b.ctx.store.paths("mover").keyProtector,
      "--guardian",
      "hostB",
    ]);
    assert.equal(g.status, 0, g.stdout + g.stderr);
    await startVm(b.ctx, "mover");
    assert.ok(await waitForPowerOff(b.ctx, "mover", 180_000));
    assert.match(
      lastScriptOutput(await serialLog(b, "mover")) ?? "",
      /bulwark-persist!/,
      "same vTPM state on host B",
    );
  } finally {
    await a.cleanup();
    await b.cleanup();
  }
});

test("Shielded: forced settings, no console, memory-reading QMP refused, unshielding needs the owner key", async () => {
  const host = await makeTestHost();
  const other = await makeTestHost("bulwark-other-");
  try {
    await createTestVm(host, "shield");
    const p = host.ctx.store.paths("shield");
    assert.equal(
      cli(host, ["vm", "security-policy", "set", "shield", "--shielded", "on"]).json.error?.code,
      "VM_ERR_KEY_PROTECTOR_REQUIRED",
    );
    assert.equal(cli(host, ["vm", "key-protector", "set", "shield", "--new-local"]).status, 0);
    const on = cli(host, ["vm", "security-policy", "set", "shield", "--shielded", "on"]);
    assert.equal(on.status, 0, on.stdout);
    const shown = cli(host, ["vm", "show", "shield"]).json as unknown as {
      security: Record<string, unknown>;
    };
    assert.deepEqual(
      [
        shown.security["secureBoot"],
        shown.security["tpm"],
        shown.security["encryptStateAndMigration"],
        shown.security["console"],
      ],
      [true, true, true, false],
    );
    for (const args of [
      ["vm", "tpm", "disable", "shield"],
      ["vm", "firmware", "set", "shield", "--secure-boot", "off"],
      ["vm", "security", "set", "shield", "--encrypt-state-and-migration", "off"],
    ]) {
      assert.equal(cli(host, args).json.error?.code, "VM_ERR_POLICY_LOCKED", args.join(" "));
    }
    await setGuestScript(host, "shield", "sleep 600\n");
    await startVm(host.ctx, "shield");
    const pid = qemuPidOf(p);
    assert.ok(pid !== null);
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0");
    assert.ok(
      !cmdline.includes("-serial") && !cmdline.some((a) => a.includes("console.sock")),
      cmdline.join(" "),
    );
    assert.ok(!cmdline.some((a) => a.includes("guest_agent") || a.startsWith("-virtfs") || a === "-gdb"));
    assert.ok(cmdline.some((a) => a.includes("dump-guest-core=off")));
    assert.equal(cli(host, ["vm", "console", "shield"]).json.error?.code, "VM_ERR_CONSOLE_UNAVAILABLE");
    for (const cmd of [
      "dump-guest-memory",
      "memsave",
      "pmemsave",
      "human-monitor-command",
      "screendump",
      "migrate",
    ]) {
      const r = cli(host, ["vm", "qmp", "shield", cmd, "{}"]);
      assert.equal(r.status, 4, cmd);
      assert.equal(r.json.error?.code, "VM_ERR_QMP_REFUSED", cmd);
    }
    const ok = cli(host, ["vm", "qmp", "shield", "query-status"]);
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal((ok.json as { status?: string }).status, "running");
    await turnOffVm(host.ctx, "shield");
    // Another host holding the directory but not the owner's key cannot unshield it.
    await cp(p.dir, other.ctx.store.paths("shield").dir, { recursive: true });
    await rm(path.join(other.ctx.store.paths("shield").dir, "run"), { recursive: true, force: true });
    assert.equal(
      cli(other, ["vm", "security-policy", "set", "shield", "--shielded", "off"]).json.error?.code,
      "VM_ERR_OWNER_KEY_REQUIRED",
    );
    assert.equal(cli(host, ["vm", "security-policy", "set", "shield", "--shielded", "off"]).status, 0);
  } finally {
    await host.cleanup();
    await other.cleanup();
  }
});

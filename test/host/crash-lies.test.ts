/**
 * Hardening item 6 without booting anything: unusable state directories fail fast, every string
 * of config.json is checked on write and on load, missing or unreadable files give catalogue
 * codes naming the file, and every attached child (probe QEMU, tools) dies with a killed CLI.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { asFileError } from "../../src/host/file-errors.js";
import { tiedToParent } from "../../src/host/lifetime.js";
import { checkStateDir } from "../../src/host/state-dir.js";
import { newVmConfig, validateConfig, type VmConfig } from "../../src/host/vm/config.js";
import { VmStore } from "../../src/host/vm/store.js";
import { codeOf, rejectsWith } from "../helpers/errors.js";
import { childrenOf, processAlive, processesMatching } from "../helpers/processes.js";
import { repoPath } from "../helpers/paths.js";

const bin = repoPath("dist/src/cli/main.js");
const cli = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  spawnSync(process.execPath, [bin, ...args], {
    encoding: "utf8",
    timeout: 20_000,
    env: { ...process.env, BULWARK_ACCEL: "tcg", ...env },
  });

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "bulwark-crash-"));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function errorOf(r: ReturnType<typeof cli>): { code: string; message: string } {
  assert.notEqual(r.signal, "SIGTERM", `timed out: ${r.stderr}`);
  const line = r.stdout.trim().split("\n").pop() ?? "";
  return (JSON.parse(line) as { error: { code: string; message: string } }).error;
}

test("an unusable --state-dir fails at once with HOST_ERR_STATE_DIR (it used to spin on /proc/self)", async () => {
  await withDir(async (dir) => {
    const file = path.join(dir, "a-file");
    await writeFile(file, "x");
    const open = path.join(dir, "open");
    await mkdir(open, { mode: 0o777 });
    await chmod(open, 0o777);
    const unusable = [
      "/proc/self",
      "/proc/self/fdinfo/new",
      "/sys/kernel",
      file,
      path.join(file, "below"),
      open,
    ];
    for (const sd of unusable) {
      assert.equal(
        codeOf(() => checkStateDir(sd)),
        "HOST_ERR_STATE_DIR",
        sd,
      );
      // Every verb that keeps files, for the one that used to spin; `vm new` for the rest.
      const verbs =
        sd === "/proc/self"
          ? [
              ["vm", "new", "x"],
              ["vm", "list"],
              ["guardian", "new", "g"],
              ["key-protector", "show", "--vm", "x"],
              ["host", "status"],
            ]
          : [["vm", "new", "x"]];
      for (const verb of verbs) {
        const argv = [...verb, "--state-dir", sd, "--json"];
        const t0 = Date.now();
        const r = cli(argv);
        assert.equal(errorOf(r).code, "HOST_ERR_STATE_DIR", `${argv.join(" ")}: ${r.stdout}${r.stderr}`);
        assert.ok(Date.now() - t0 < 15_000, `${argv.join(" ")} took ${Date.now() - t0} ms`);
      }
    }
    // Not owned by us: a directory handed over to another user.
    if (process.getuid?.() === 0) {
      const theirs = path.join(dir, "theirs");
      await mkdir(theirs, { mode: 0o700 });
      spawnSync("chown", ["65534:65534", theirs]);
      assert.equal(
        codeOf(() => checkStateDir(theirs)),
        "HOST_ERR_STATE_DIR",
      );
    }
    // A good one, existing or still to be made, passes and nothing is created by the check.
    assert.equal(checkStateDir(dir), dir);
    assert.equal(checkStateDir(path.join(dir, "new", "deeper")), path.join(dir, "new", "deeper"));
    assert.equal(cli(["vm", "list", "--state-dir", path.join(dir, "new"), "--json"]).status, 0);
  });
});

test("--network takes only what QEMU's command line is made for; a stored bad value is refused at load", async () => {
  await withDir(async (dir) => {
    for (const bad of ["evil", "bridge,br0", "user,hostfwd=tcp::22-:22", "", "USER"]) {
      const r = cli(["vm", "new", "n", "--network", bad, "--state-dir", dir, "--json"]);
      assert.equal(errorOf(r).code, "CLI_ERR_USAGE", bad);
      assert.equal(
        codeOf(() => newVmConfig({ name: "n", network: bad as VmConfig["network"] })),
        "VM_ERR_INVALID_CONFIG",
      );
    }
    assert.equal(await new VmStore(dir).exists("n"), false, "nothing stored");
    const r = cli(["vm", "new", "ok", "--network", "none", "--state-dir", dir, "--json"]);
    assert.equal(r.status, 0, r.stderr);
    // config.json edited by hand: every verb that reads it refuses, naming the field.
    const store = new VmStore(dir);
    const file = store.paths("ok").config;
    const good = JSON.parse(await readFile(file, "utf8")) as Record<string, unknown>;
    await writeFile(file, JSON.stringify({ ...good, network: "evil" }));
    for (const verb of [["show"], ["start"], ["tpm", "enable"]]) {
      const e = errorOf(cli(["vm", ...verb, "ok", "--state-dir", dir, "--json"]));
      assert.equal(e.code, "VM_ERR_INVALID_CONFIG", verb.join(" "));
      assert.match(e.message, /network/);
    }
  });
});

test("every string of config.json is checked, on write and on load", () => {
  const base = newVmConfig({ name: "v", disks: [{ path: "/var/lib/disk.img", format: "raw" }] });
  const edits: [string, (c: Record<string, unknown>) => void][] = [
    [
      "disk path with a QEMU option",
      (c) => (c["disks"] = [{ path: "/d.img,file.locking=off", format: "raw" }]),
    ],
    ["disk path relative", (c) => (c["disks"] = [{ path: "d.img", format: "raw" }])],
    ["disk path with a newline", (c) => (c["disks"] = [{ path: "/d\n.img", format: "raw" }])],
    [
      "disk snapshot not a boolean",
      (c) => (c["disks"] = [{ path: "/d.img", format: "raw", snapshot: "yes" }]),
    ],
    ["disks not a list", (c) => (c["disks"] = "/d.img")],
    ["id not a UUID", (c) => (c["id"] = "x,process=evil")],
    ["createdAt not a time", (c) => (c["createdAt"] = "yesterday")],
    ["template with a comma", (c) => (c["firmware"] = { secureBoot: true, template: "a,b" })],
    ["template missing", (c) => (c["firmware"] = { secureBoot: true })],
    ["secureBoot a string", (c) => (c["firmware"] = { secureBoot: "off", template: "MicrosoftWindows" })],
    ["tpm.enabled a string", (c) => (c["tpm"] = { enabled: "true" })],
    ["tpm missing", (c) => delete c["tpm"]],
    ["console a string", (c) => (c["console"] = "no")],
    ["debugStub a number", (c) => (c["debugStub"] = 0)],
    ["share tag with an option", (c) => (c["shares"] = [{ tag: "t,security_model=none", path: "/srv" }])],
    ["share path with an option", (c) => (c["shares"] = [{ tag: "t", path: "/srv,readonly=off" }])],
    ["fw_cfg file with an option", (c) => (c["fwCfg"] = { "opt/x": "/f,string=evil" })],
    ["fw_cfg not an object", (c) => (c["fwCfg"] = [])],
    ["security missing", (c) => delete c["security"]],
    ["network evil", (c) => (c["network"] = "evil")],
    ["network missing", (c) => delete c["network"]],
    ["vTPM marker not a time", (c) => (c["vtpmManufacturedAt"] = true)],
  ];
  for (const [what, edit] of edits) {
    const c = structuredClone(base) as unknown as Record<string, unknown>;
    edit(c);
    assert.equal(
      codeOf(() => validateConfig(c as unknown as VmConfig)),
      "VM_ERR_INVALID_CONFIG",
      what,
    );
  }
  validateConfig(base);
});

test("a config.json that names another VM is refused at load", async () => {
  await withDir(async (dir) => {
    const store = new VmStore(dir);
    await store.create(newVmConfig({ name: "a" }));
    const a = await readFile(store.paths("a").config, "utf8");
    await mkdir(store.paths("b").dir, { mode: 0o700 });
    await writeFile(store.paths("b").config, a);
    await rejectsWith(store.load("b"), "VM_ERR_INVALID_CONFIG");
  });
});

test("file-system failures become catalogue errors naming the file and what it is", () => {
  const enoent = Object.assign(new Error("ENOENT: no such file"), {
    code: "ENOENT",
    syscall: "open",
    path: "/var/lib/bulwark/vms/web/nvram.fd",
  });
  const e = asFileError(enoent) as Error & { code: string };
  assert.equal(e.code, "HOST_ERR_FILE_MISSING");
  assert.match(e.message, /NVRAM.*\/vms\/web\/nvram\.fd/);
  const eisdir = Object.assign(new Error("EISDIR"), {
    code: "EISDIR",
    syscall: "read",
    path: "/s/host/guardians/g.guardian.pem",
  });
  const f = asFileError(eisdir) as Error & { code: string };
  assert.equal(f.code, "HOST_ERR_FILE_ACCESS");
  assert.match(f.message, /local guardian/);
  const other = new Error("EIO");
  assert.equal(asFileError(other), other);
});

async function until(what: string, cond: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * Starts a Node process running `code` (an ES module importing from dist/), waits for `child` to
 * find the process it starts, kill -9s the Node process, and returns the child's pids.
 */
async function killParentMidway(code: string, child: (parent: number) => number[]): Promise<number[]> {
  const parent = spawn(process.execPath, ["--input-type=module", "-e", code], { stdio: "ignore" });
  const pid = parent.pid as number;
  let kids: number[] = [];
  try {
    await until("the child", () => (kids = child(pid)).length > 0, 15_000);
  } finally {
    parent.kill("SIGKILL");
  }
  await new Promise((r) => parent.once("exit", r));
  return kids;
}

const dist = (m: string) => JSON.stringify(repoPath("dist/src/host", m));

test("kill -9 of the CLI mid-probe leaves no probe QEMU behind", async (t) => {
  try {
    accessSync("/dev/kvm", constants.R_OK | constants.W_OK);
  } catch {
    t.skip("/dev/kvm is not usable here: the probe starts no QEMU");
    return;
  }
  for (let round = 0; round < 2; round++) {
    const kids = await killParentMidway(
      `import { probeKvm } from ${dist("probe.js")}; await probeKvm(); setInterval(() => {}, 1000);`,
      (parent) =>
        childrenOf(parent).filter((k) => {
          try {
            return processesMatching("-accel kvm -machine q35").includes(k);
          } catch {
            return false;
          }
        }),
    );
    await until("the probe QEMU to die with its parent", () => kids.every((k) => !processAlive(k)), 3000);
  }
});

test("kill -9 of the CLI while a tool runs: the tool dies too (runProgram and spawnChild alike)", async () => {
  for (const how of ["runProgram", "spawnChild"] as const) {
    const seconds = String(3000 + Math.floor(Math.random() * 5000));
    const code =
      how === "runProgram"
        ? `import { runProgram } from ${dist("tools.js")}; runProgram("/bin/sleep", [${JSON.stringify(seconds)}]).catch(() => {}); setInterval(() => {}, 1000);`
        : `import { spawnChild } from ${dist("children.js")}; spawnChild("/bin/sleep", [${JSON.stringify(seconds)}]); setInterval(() => {}, 1000);`;
    const kids = await killParentMidway(code, () => processesMatching(`/bin/sleep ${seconds}`));
    await until(`the ${how} child to die with its parent`, () => kids.every((k) => !processAlive(k)), 3000);
  }
});

test("a child whose parent died before the parent-death signal was armed exits at once", () => {
  // As if this process had died between fork and prctl: the pid the child checks is not its parent.
  const { command, argv } = tiedToParent("/bin/sleep", ["30"]);
  const orphaned = argv.map((a) => (a === String(process.pid) ? "1" : a));
  const t0 = Date.now();
  const r = spawnSync(command, orphaned, { timeout: 10_000 });
  assert.equal(r.status, 137);
  assert.ok(Date.now() - t0 < 5000);
  // And with the right parent the program runs.
  const ok = tiedToParent("/bin/echo", ["tied"]);
  assert.equal(spawnSync(ok.command, ok.argv, { encoding: "utf8" }).stdout, "tied\n");
});

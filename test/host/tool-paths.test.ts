/**
 * External programs come from the system directories with a minimal environment (hardening
 * issue 11, item 4): a `qemu-system-x86_64` or `swtpm` earlier in the caller's PATH is never
 * run, and nothing of the caller's environment (LD_PRELOAD, proxies, secrets) reaches a child.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { spawnChild } from "../../src/host/children.js";
import { findProgram, requireProgram, runProgram } from "../../src/host/tools.js";

let fakeDir: string;
let marker: string;
const savedPath = process.env["PATH"];

before(async () => {
  fakeDir = await mkdtemp(path.join(os.tmpdir(), "bulwark-fake-path-"));
  marker = path.join(fakeDir, "ran");
  for (const name of ["qemu-system-x86_64", "swtpm", "swtpm_setup", "qemu-img", "setpriv", "env"]) {
    const f = path.join(fakeDir, name);
    await writeFile(f, `#!/bin/sh\necho "${name} $*" >> ${marker}\nexit 0\n`);
    await chmod(f, 0o755);
  }
  process.env["PATH"] = `${fakeDir}:${savedPath ?? ""}`;
  process.env["BULWARK_TEST_SECRET"] = "must-not-reach-a-child";
});

after(async () => {
  process.env["PATH"] = savedPath;
  delete process.env["BULWARK_TEST_SECRET"];
  await rm(fakeDir, { recursive: true, force: true });
});

describe("external programs", () => {
  it("resolve to the system directories whatever PATH says", () => {
    for (const name of ["qemu-system-x86_64", "swtpm", "swtpm_setup", "swtpm_ioctl", "qemu-img"]) {
      const found = requireProgram(name);
      assert.ok(/^\/(usr\/)?s?bin\//.test(found), `${name} -> ${found}`);
      assert.ok(!found.startsWith(fakeDir), name);
    }
    assert.equal(findProgram(path.join(fakeDir, "swtpm")), undefined, "a path is not a program name");
  });

  it("a fake qemu-system-x86_64 or swtpm first in PATH is not run", async () => {
    const q = spawnChild("qemu-system-x86_64", ["--version"], { stdout: "pipe" });
    let out = "";
    q.child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    assert.equal((await q.exited).code, 0);
    assert.match(out, /QEMU emulator version/);
    const s = await runProgram("swtpm", ["--version"]);
    assert.match(s.stdout + s.stderr, /TPM emulator/);
    assert.equal(existsSync(marker), false, existsSync(marker) ? await readFile(marker, "utf8") : "");
  });

  it("children get a fixed PATH and the C locale, nothing inherited", async () => {
    const { stdout } = await runProgram("env", []);
    const env = Object.fromEntries(
      stdout
        .trim()
        .split("\n")
        .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
    );
    assert.deepEqual(env, { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C", LC_ALL: "C" });
    const c = spawnChild("env", [], { stdout: "pipe" });
    let out = "";
    c.child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    await c.exited;
    assert.doesNotMatch(out, /BULWARK_TEST_SECRET|fake-path/);
    assert.match(out, /^PATH=\/usr\/sbin:\/usr\/bin:\/sbin:\/bin$/m);
    assert.equal(existsSync(marker), false);
  });
});

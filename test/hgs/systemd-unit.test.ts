/**
 * packaging/systemd/bulwark-hgs.service: `systemd-analyze verify` (the real one) accepts it
 * without a single warning, and it keeps the settings an operator relies on: its own user, the
 * HGS directory as systemd's state directory (the only writable path), and the hardening.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { repoPath } from "../helpers/paths.js";

const UNIT = repoPath("packaging/systemd/bulwark-hgs.service");
const SYSTEMD_ANALYZE = "/usr/bin/systemd-analyze";

/** The [Service] section's settings (a key given twice keeps its last value). */
function serviceSettings(unit: string): Map<string, string> {
  const out = new Map<string, string>();
  let section = "";
  for (const raw of unit.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s?.[1]) section = s[1];
    else if (section === "Service") {
      const eq = line.indexOf("=");
      out.set(line.slice(0, eq), line.slice(eq + 1));
    }
  }
  return out;
}

test("systemd-analyze verify accepts the HGS unit without warnings", () => {
  if (!existsSync(SYSTEMD_ANALYZE)) throw new Error(`${SYSTEMD_ANALYZE} not found: apt-get install systemd`);
  // verify insists that ExecStart's program exists; this machine has no /usr/bin/bulwark, so the
  // unit is checked as written except for that path, which points at an executable stand-in.
  const dir = mkdtempSync(path.join(tmpdir(), "bulwark-unit-"));
  try {
    const exe = path.join(dir, "bulwark");
    writeFileSync(exe, "#!/bin/sh\n");
    chmodSync(exe, 0o755);
    const unit = readFileSync(UNIT, "utf8");
    assert.match(unit, /^ExecStart=\/usr\/bin\/bulwark /m);
    const copy = path.join(dir, "bulwark-hgs.service");
    writeFileSync(copy, unit.replace(/^ExecStart=\/usr\/bin\/bulwark /m, `ExecStart=${exe} `));
    const r = spawnSync(SYSTEMD_ANALYZE, ["verify", "--man=no", copy], { encoding: "utf8", timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(
      `${r.stdout}${r.stderr}`.trim(),
      "",
      "no warning either (unknown keys are only warned about)",
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the HGS unit runs as its own user in its state directory, hardened", () => {
  const s = serviceSettings(readFileSync(UNIT, "utf8"));
  assert.equal(s.get("User"), "bulwark");
  assert.equal(s.get("StateDirectory"), "bulwark-hgs");
  assert.equal(s.get("StateDirectoryMode"), "0700", "the directory holds the HGS keys");
  assert.match(s.get("ExecStart") ?? "", /^\/usr\/bin\/bulwark hgs serve --dir \/var\/lib\/bulwark-hgs( |$)/);
  assert.equal(s.get("ReadWritePaths"), "/var/lib/bulwark-hgs");
  for (const [key, value] of [
    ["NoNewPrivileges", "yes"],
    ["ProtectSystem", "strict"],
    ["ProtectHome", "yes"],
    ["PrivateTmp", "yes"],
    ["PrivateDevices", "yes"],
    ["CapabilityBoundingSet", ""],
    ["UMask", "0077"],
  ] as const) {
    assert.equal(s.get(key), value, key);
  }
});

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { Exit } from "../../src/core/errors.js";
import { repoPath } from "../helpers/paths.js";
import { tempDir } from "../helpers/uefi-varstore-fixtures.js";

const { dir, cleanup } = tempDir("bulwark-sb-cli-");
after(cleanup);
const state = path.join(dir, "state");

function sb(...args: string[]) {
  const r = spawnSync(process.execPath, [repoPath("dist/src/cli/main.js"), "secureboot", ...args], {
    encoding: "utf8",
  });
  return {
    status: r.status,
    stdout: r.stdout,
    stderr: r.stderr,
    json: () => JSON.parse(r.stdout) as Record<string, unknown>,
  };
}

test("--help on every verb; bad usage exits 2", () => {
  for (const v of [[], ["template"], ["vars"], ["keys"], ["setup"]]) {
    const r = sb(...v, "--help");
    assert.equal(r.status, 0, v.join(" "));
    assert.match(r.stdout, /bulwark secureboot/);
  }
  assert.equal(sb("frobnicate").status, Exit.usage);
  assert.equal(sb("vars", "create", "--out", path.join(dir, "x.fd")).status, Exit.usage);
  assert.equal(sb("vars", "show", "--bogus").status, Exit.usage);
});

test("templates list without setup; showing a Microsoft template needs setup (exit 7)", () => {
  const list = sb("template", "list", "--state-dir", state, "--json");
  assert.equal(list.status, 0, list.stderr);
  assert.deepEqual(
    (JSON.parse(list.stdout) as { name: string }[]).map((t) => t.name),
    ["MicrosoftWindows", "MicrosoftUEFICertificateAuthority", "OpenSourceShieldedVM"],
  );
  const show = sb("template", "show", "MicrosoftWindows", "--state-dir", state, "--json");
  assert.equal(show.status, Exit.missingDependency);
  assert.equal((show.json()["error"] as { code: string }).code, "UEFI_ERR_MS_CERTS_MISSING");
});

test("setup, keys, import, vars create and show, end to end", () => {
  const setup = sb("setup", "--state-dir", state, "--json");
  assert.equal(setup.status, 0, setup.stderr);
  const show = sb("template", "show", "OpenSourceShieldedVM", "--state-dir", state, "--json");
  assert.equal(show.status, 0, show.stderr);
  const db = show.json()["db"] as { subject: string }[];
  assert.match(db[0]!.subject, /^CN=Microsoft Corporation UEFI CA 2011/);

  const keyDir = path.join(dir, "mykeys");
  const keys = sb("keys", "create", "--cn", "My Secure Boot db", "--out", keyDir, "--kind", "db", "--json");
  assert.equal(keys.status, 0, keys.stderr);
  assert.equal(statSync(path.join(keyDir, "db.key")).mode & 0o777, 0o600);
  assert.equal(sb("keys", "create", "--cn", "Again", "--out", keyDir, "--kind", "db").status, Exit.conflict);

  const hashes = path.join(dir, "revoked.txt");
  writeFileSync(hashes, `${"ab".repeat(32)}\n`);
  const imp = sb(
    "template",
    "import",
    "--name",
    "Mine",
    "--db",
    path.join(keyDir, "db.crt"),
    "--kek",
    path.join(keyDir, "db.der"),
    "--dbx",
    hashes,
    "--state-dir",
    state,
    "--json",
  );
  assert.equal(imp.status, 0, imp.stderr);
  assert.equal(
    sb("template", "import", "--name", "Mine", "--db", path.join(keyDir, "db.crt"), "--state-dir", state)
      .status,
    Exit.conflict,
  );
  assert.equal(
    sb("template", "import", "--name", "Bad", "--kek", hashes, "--state-dir", state).status,
    Exit.invalidInput,
  );

  const out = path.join(dir, "vm.fd");
  const create = sb(
    "vars",
    "create",
    "--template",
    "Mine",
    "--secure-boot",
    "off",
    "--out",
    out,
    "--state-dir",
    state,
    "--json",
  );
  assert.equal(create.status, 0, create.stderr);
  assert.equal(statSync(out).mode & 0o777, 0o600);
  const shown = sb("vars", "show", out, "--json");
  assert.equal(shown.status, 0, shown.stderr);
  const report = shown.json() as {
    secureBoot: string;
    policy: { name: string; entries: { subject?: string; hash?: string }[] }[];
  };
  assert.equal(report.secureBoot, "disabled");
  assert.equal(report.policy.find((p) => p.name === "db")!.entries[0]!.subject, "CN=My Secure Boot db");
  assert.equal(report.policy.find((p) => p.name === "dbx")!.entries[0]!.hash, "ab".repeat(32));
  assert.equal(report.policy.find((p) => p.name === "PK")!.entries[0]!.subject, "CN=Bulwark Platform Key");
  assert.equal(statSync(path.join(state, "secureboot", "PK.key")).mode & 0o777, 0o600);

  // Export as a Hyper-V/Azure uefiSettings document and import it back: same policy.
  const doc = sb("vars", "show", out, "--uefi-settings");
  assert.equal(doc.status, 0, doc.stderr);
  const docFile = path.join(dir, "exported.json");
  writeFileSync(docFile, doc.stdout);
  const reimp = sb(
    "template",
    "import",
    "--name",
    "Reimported",
    "--uefi-settings",
    docFile,
    "--state-dir",
    state,
  );
  assert.equal(reimp.status, 0, reimp.stderr);
  const again = path.join(dir, "vm2.fd");
  assert.equal(
    sb(
      "vars",
      "create",
      "--template",
      "Reimported",
      "--secure-boot",
      "off",
      "--out",
      again,
      "--state-dir",
      state,
    ).status,
    0,
  );
  const strip = (r: typeof report) =>
    r.policy.map((p) => ({ name: p.name, entries: p.entries.map((e) => e.subject ?? e.hash) }));
  assert.deepEqual(strip(sb("vars", "show", again, "--json").json() as typeof report), strip(report));

  const text = sb("vars", "show", "/usr/share/OVMF/OVMF_VARS_4M.ms.fd", "--all");
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /CN=Microsoft Corporation KEK CA 2011/);
  assert.match(text.stdout, /SecureBootEnable/);
});

test("Azure's documented uefiSettings: a whole ARM template imports; templates export as securityProfile", () => {
  // Written as learn.microsoft.com "Secure Boot UEFI keys" shows it (test/vectors/uefi/README.md).
  const arm = repoPath("test/vectors/uefi/azure/arm-image-version-replace-all.json");
  const imp = sb(
    "template",
    "import",
    "--name",
    "AzureArm",
    "--uefi-settings",
    arm,
    "--state-dir",
    state,
    "--json",
  );
  assert.equal(imp.status, 0, imp.stderr);
  const shown = sb("template", "show", "AzureArm", "--state-dir", state, "--json").json();
  assert.match((shown["PK"] as { subject: string }[])[0]!.subject, /CN=Microsoft Corporation KEK CA 2011/);
  assert.equal((shown["db"] as unknown[]).length, 2);

  const exported = sb("template", "export", "AzureArm", "--state-dir", state);
  assert.equal(exported.status, 0, exported.stderr);
  const doc = exported.json() as { securityProfile: { uefiSettings: { signatureTemplateNames: string[] } } };
  assert.deepEqual(doc.securityProfile.uefiSettings.signatureTemplateNames, ["NoSignatureTemplate"]);
  const file = path.join(dir, "azure-export.json");
  writeFileSync(file, exported.stdout);
  assert.equal(
    sb("template", "import", "--name", "AzureArm2", "--uefi-settings", file, "--state-dir", state).status,
    0,
  );
  const strip = (j: Record<string, unknown>) =>
    ["PK", "KEK", "db", "dbx"].map((k) =>
      (j[k] as { subject?: string; hash?: string }[]).map((e) => e.subject ?? e.hash),
    );
  assert.deepEqual(
    strip(sb("template", "show", "AzureArm2", "--state-dir", state, "--json").json()),
    strip(shown),
  );

  const win = sb("template", "export", "MicrosoftWindows", "--state-dir", state);
  assert.equal(win.status, 0, win.stderr);
  assert.deepEqual(JSON.parse(win.stdout), {
    securityProfile: { uefiSettings: { signatureTemplateNames: ["MicrosoftWindowsTemplate"] } },
  });

  const old = path.join(dir, "invented.json");
  writeFileSync(old, JSON.stringify({ uefiSettings: { signatureMode: "Replace", signatures: { db: [] } } }));
  const refused = sb(
    "template",
    "import",
    "--name",
    "Old",
    "--uefi-settings",
    old,
    "--state-dir",
    state,
    "--json",
  );
  assert.equal(refused.status, Exit.invalidInput);
  const err = refused.json()["error"] as { code: string; message: string };
  assert.equal(err.code, "UEFI_ERR_TEMPLATE_INVALID");
  assert.match(err.message, /securityProfile\.uefiSettings.*signatureTemplateNames.*additionalSignatures/);
});

test("typed errors map to the catalogue's exit codes", () => {
  const notStore = path.join(dir, "not-a-store.fd");
  writeFileSync(notStore, Buffer.alloc(4096, 0x41));
  const r = sb("vars", "show", notStore, "--json");
  assert.equal(r.status, Exit.invalidInput);
  assert.equal((r.json()["error"] as { code: string }).code, "UEFI_ERR_VARSTORE_INVALID");
  assert.equal(
    sb(
      "vars",
      "create",
      "--template",
      "NoSuchTemplate",
      "--out",
      path.join(dir, "y.fd"),
      "--state-dir",
      state,
    ).status,
    Exit.notFound,
  );
  assert.equal(sb("vars", "show", path.join(dir, "missing.fd")).status, Exit.io);
  // A write that cannot happen fails typed and leaves nothing behind (atomic: temp file, fsync, rename).
  const blocker = path.join(dir, "a-file");
  writeFileSync(blocker, "x");
  const w = sb(
    "vars",
    "create",
    "--template",
    "MicrosoftWindows",
    "--out",
    path.join(blocker, "vm.fd"),
    "--state-dir",
    state,
    "--json",
  );
  assert.equal(w.status, Exit.io, w.stdout);
  assert.equal((w.json()["error"] as { code: string }).code, "UEFI_ERR_IO");
});

test("vars sign / vars update: a db update signed by the installation PK applies; tampered or foreign ones are refused (exit 4)", () => {
  const st = path.join(dir, "sign-state");
  assert.equal(sb("setup", "--state-dir", st).status, 0);
  const vm = path.join(dir, "sign-vm.fd");
  assert.equal(
    sb("vars", "create", "--template", "MicrosoftUEFICertificateAuthority", "--out", vm, "--state-dir", st)
      .status,
    0,
  );
  const hashes = path.join(dir, "extra-db.txt");
  writeFileSync(hashes, `${"cd".repeat(32)}\n`);
  const auth = path.join(dir, "db.auth");
  const signed = sb(
    "vars",
    "sign",
    "--var",
    "db",
    "--append",
    "--data",
    hashes,
    "--time",
    "2026-05-01T00:00:00Z",
    "--out",
    auth,
    "--state-dir",
    st,
    "--json",
  );
  assert.equal(signed.status, 0, signed.stderr);
  const upd = sb("vars", "update", vm, "--var", "db", "--append", "--auth", auth, "--json");
  assert.equal(upd.status, 0, upd.stderr);
  assert.match(String((upd.json()["authorisedBy"] as { subject: string }).subject), /Bulwark Platform Key/);
  const report = sb("vars", "show", vm, "--json").json() as {
    policy: { name: string; entries: { kind: string; hash?: string }[] }[];
  };
  const db = report.policy.find((p) => p.name === "db")!.entries;
  assert.equal(db.length, 2, "appended to Microsoft's UEFI CA");
  assert.equal(db[1]!.hash, "cd".repeat(32));

  // A key from another installation is refused; nothing is written.
  const other = path.join(dir, "other-keys");
  assert.equal(sb("keys", "create", "--cn", "Someone else", "--out", other).status, 0);
  const foreign = path.join(dir, "foreign.auth");
  assert.equal(
    sb("vars", "sign", "--var", "db", "--data", hashes, "--key-dir", other, "--out", foreign).status,
    0,
  );
  const before = sb("vars", "show", vm, "--json").stdout;
  const refused = sb("vars", "update", vm, "--var", "db", "--auth", foreign, "--json");
  assert.equal(refused.status, Exit.refused);
  assert.equal((refused.json()["error"] as { code: string }).code, "UEFI_ERR_AUTH_REFUSED");
  assert.equal(sb("vars", "show", vm, "--json").stdout, before);
});

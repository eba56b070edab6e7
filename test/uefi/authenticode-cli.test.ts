/** `bulwark secureboot sign|verify`, run as the real CLI process. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { readdirSync, writeFileSync } from "node:fs";
import { createCertificate, derToPem } from "../../src/asn1/x509.js";
import { tempDir, toolOk } from "../helpers/asn1-tools.js";
import { repoPath } from "../helpers/paths.js";
import { bootChainFiles } from "../helpers/uefi-bootchain.js";

function bulwark(...args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [repoPath("dist/src/cli/main.js"), ...args], { encoding: "utf8" });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

test("secureboot sign writes atomically a file sbverify accepts; verify exits 0 allowed / 4 refused with --json fields", async () => {
  const files = await bootChainFiles();
  const t = tempDir("bulwark-sbcli-");
  try {
    const k = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const cert = createCertificate({
      subject: "CN=CLI signer",
      publicKey: k.publicKey,
      signingKey: k.privateKey,
    });
    writeFileSync(t.file("db.key"), k.privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
    writeFileSync(t.file("db.crt"), derToPem(cert));
    const out = t.file("out/grubx64.efi");
    const s = bulwark(
      "secureboot",
      "sign",
      files.grub,
      "--key",
      t.file("db.key"),
      "--cert",
      t.file("db.crt"),
      "--out",
      out,
    );
    assert.equal(s.status, 0, s.stderr);
    assert.doesNotMatch(s.stdout + s.stderr, /PRIVATE KEY/);
    assert.deepEqual(readdirSync(t.file("out")), ["grubx64.efi"], "no temporary file left behind");
    toolOk("sbverify", ["--cert", t.file("db.crt"), out]); // exits non-zero unless the signature verifies
    const ok = bulwark("secureboot", "verify", out, "--db", t.file("db.crt"), "--json");
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    const j = JSON.parse(ok.stdout) as {
      allowed: boolean;
      reason: string;
      digest: string;
      signers: string[];
    };
    assert.equal(j.allowed, true);
    assert.match(j.reason, /CN=CLI signer/);
    assert.match(j.digest, /^[0-9a-f]{64}$/);
    assert.deepEqual(j.signers, ["CN=CLI signer"]);
    // Debian's original grub is not allowed by our db; by its hash (as a hash-list file) it is; dbx by hash refuses.
    const refused = bulwark("secureboot", "verify", files.grub, "--db", t.file("db.crt"), "--json");
    assert.equal(refused.status, 4);
    assert.equal((JSON.parse(refused.stdout) as { allowed: boolean }).allowed, false);
    writeFileSync(t.file("hashes.txt"), `# grub\n${j.digest}\n`);
    assert.equal(bulwark("secureboot", "verify", files.grub, "--db", t.file("hashes.txt")).status, 0);
    assert.equal(
      bulwark("secureboot", "verify", files.grub, "--db", t.file("hashes.txt"), "--dbx", t.file("hashes.txt"))
        .status,
      4,
    );
    // Append mode keeps the existing signature.
    const both = t.file("both.efi");
    assert.equal(
      bulwark(
        "secureboot",
        "sign",
        files.grub,
        "--key",
        t.file("db.key"),
        "--cert",
        t.file("db.crt"),
        "--out",
        both,
        "--append",
      ).status,
      0,
    );
    const list = toolOk("sbverify", ["--list", both]).stdout;
    assert.equal((list.match(/^signature \d/gm) ?? []).length, 2);
    // Errors: a key that does not match the certificate; a non-PE file; usage.
    const other = generateKeyPairSync("rsa", { modulusLength: 2048 });
    writeFileSync(t.file("other.key"), other.privateKey.export({ type: "pkcs8", format: "pem" }));
    const mism = bulwark(
      "secureboot",
      "sign",
      files.grub,
      "--key",
      t.file("other.key"),
      "--cert",
      t.file("db.crt"),
      "--out",
      t.file("x.efi"),
      "--json",
    );
    assert.equal(mism.status, 5);
    assert.equal(
      (JSON.parse(mism.stdout) as { error: { code: string } }).error.code,
      "UEFI_ERR_PE_SIGNING_KEY",
    );
    const notPe = bulwark("secureboot", "verify", t.file("db.crt"), "--db", t.file("db.crt"));
    assert.equal(notPe.status, 5);
    assert.match(notPe.stderr, /UEFI_ERR_PE_INVALID/);
    assert.equal(bulwark("secureboot", "verify", files.grub).status, 2);
  } finally {
    t.cleanup();
  }
});

test("secureboot verify --template: shim allowed by MicrosoftUEFICertificateAuthority, refused by MicrosoftWindows", async () => {
  const files = await bootChainFiles();
  const t = tempDir("bulwark-sbcli-");
  try {
    const setup = bulwark("secureboot", "setup", "--state-dir", t.dir);
    assert.equal(setup.status, 0, setup.stderr);
    const uefiCa = bulwark(
      "secureboot",
      "verify",
      files.shim,
      "--template",
      "MicrosoftUEFICertificateAuthority",
      "--state-dir",
      t.dir,
    );
    assert.equal(uefiCa.status, 0, uefiCa.stdout + uefiCa.stderr);
    assert.match(uefiCa.stdout, /ALLOWED: .*Microsoft Corporation UEFI CA 2011/);
    // The same decision from an NVRAM file: Debian's OVMF_VARS_4M.ms.fd enrols the UEFI CA.
    const vars = bulwark(
      "secureboot",
      "verify",
      files.shim,
      "--vars",
      "/usr/share/OVMF/OVMF_VARS_4M.ms.fd",
      "--json",
    );
    assert.equal(vars.status, 0, vars.stdout + vars.stderr);
    assert.match(
      (JSON.parse(vars.stdout) as { reason: string }).reason,
      /Microsoft Corporation UEFI CA 2011/,
    );
    assert.equal(
      bulwark("secureboot", "verify", files.grub, "--vars", "/usr/share/OVMF/OVMF_VARS_4M.ms.fd").status,
      4,
    );
    const windows = bulwark(
      "secureboot",
      "verify",
      files.shim,
      "--template",
      "MicrosoftWindows",
      "--state-dir",
      t.dir,
    );
    assert.equal(windows.status, 4, windows.stdout);
    assert.match(windows.stdout, /REFUSED/);
  } finally {
    t.cleanup();
  }
});

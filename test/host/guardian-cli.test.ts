/**
 * `bulwark guardian` moving a guardian between hosts as PKCS#12: export with a passphrase file,
 * read by the real openssl, imported on another "host" with the same thumbprint; bad input
 * (no passphrase, wrong passphrase, garbage) refused with typed errors and nothing written.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { repoPath } from "../helpers/paths.js";

const bin = repoPath("dist/src/cli/main.js");
const root = mkdtempSync(path.join(os.tmpdir(), "bulwark-guardian-cli-"));
after(() => rmSync(root, { recursive: true, force: true }));

function cli(stateDir: string, args: string[]) {
  const r = spawnSync(process.execPath, [bin, "guardian", ...args, "--state-dir", stateDir, "--json"], {
    encoding: "utf8",
  });
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(r.stdout) as Record<string, unknown>;
  } catch {
    // not JSON: the assertions below show stdout/stderr
  }
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, json };
}

test("a guardian exported as PKCS#12 imports on another host with its keys and thumbprint", () => {
  const hostA = path.join(root, "a");
  const hostB = path.join(root, "b");
  const pass = path.join(root, "pass.txt");
  writeFileSync(pass, "correct horse battery staple\n");
  const created = cli(hostA, ["new", "Owner"]);
  assert.equal(created.status, 0, created.stderr);
  const p12 = path.join(root, "owner.p12");

  const noPass = cli(hostA, ["export", "Owner", "--format", "pkcs12", "--out", p12]);
  assert.equal(noPass.status, 2, noPass.stdout);
  assert.throws(() => statSync(p12));

  const exp = cli(hostA, ["export", "Owner", "--format", "pkcs12", "--passphrase-file", pass, "--out", p12]);
  assert.equal(exp.status, 0, exp.stderr);
  assert.equal(statSync(p12).mode & 0o777, 0o600);
  const info = spawnSync(
    "openssl",
    ["pkcs12", "-in", p12, "-passin", "pass:correct horse battery staple", "-nokeys"],
    { encoding: "utf8" },
  );
  assert.equal(info.status, 0, info.stderr);
  assert.equal(info.stdout.match(/BEGIN CERTIFICATE/g)?.length, 2);

  const wrong = path.join(root, "wrong.txt");
  writeFileSync(wrong, "not it\n");
  const refused = cli(hostB, ["import", p12, "--passphrase-file", wrong]);
  assert.notEqual(refused.status, 0);
  assert.equal((refused.json["error"] as { code: string }).code, "PROTECTOR_ERR_PKCS12");
  assert.deepEqual(cli(hostB, ["list"]).json, [], "a refused import writes nothing");

  const needsPass = cli(hostB, ["import", p12]);
  assert.equal(needsPass.status, 2);

  const imp = cli(hostB, ["import", p12, "--passphrase-file", pass]);
  assert.equal(imp.status, 0, imp.stderr);
  assert.equal(imp.json["hasPrivateKey"], true);
  assert.equal(imp.json["name"], "Owner");
  assert.equal(imp.json["thumbprint"], created.json["thumbprint"]);

  const garbage = path.join(root, "garbage.p12");
  writeFileSync(garbage, Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00, 0xff]));
  const bad = cli(path.join(root, "c"), ["import", garbage, "--passphrase-file", pass]);
  assert.notEqual(bad.status, 0);
  assert.equal((bad.json["error"] as { code: string }).code, "PROTECTOR_ERR_PKCS12");
});

test("guardian names are never paths: a traversal name and a received PEM's name line are refused, nothing written outside", () => {
  const host = path.join(root, "names");
  const outside = path.join(root, "escaped");
  const bad = cli(host, ["new", "../escaped"]);
  assert.equal(bad.status, 5, bad.stdout);
  assert.match(bad.stdout + bad.stderr, /GUARDIAN_ERR_INVALID_NAME/);
  assert.throws(() => statSync(`${outside}.guardian.pem`));
  assert.throws(() => statSync(path.join(host, "host", "escaped.guardian.pem")), "where ../ would have led");

  const made = cli(host, ["new", "Owner2"]);
  assert.equal(made.status, 0, made.stderr);
  assert.match(String(made.json["thumbprint"]), /^[0-9a-f]{64}$/, "the thumbprint is printed");
  const pemFile = path.join(root, "owner2.pem");
  const exp = cli(host, ["export", "Owner2", "--out", pemFile]);
  assert.equal(exp.status, 0, exp.stderr);
  // The name line is not covered by the certificates: rewrite it as a received file could.
  const pem = readFileSync(pemFile, "utf8");
  assert.match(pem, /Owner2/);
  writeFileSync(pemFile, pem.replaceAll("Owner2", "../../escaped"));
  const other = path.join(root, "names-b");
  const imp = cli(other, ["import", pemFile]);
  assert.equal(imp.status, 5, imp.stdout);
  assert.match(imp.stdout + imp.stderr, /GUARDIAN_ERR_INVALID_NAME/);
  assert.throws(() => statSync(`${outside}.public.pem`));
  assert.throws(() => statSync(path.join(other, "escaped.public.pem")), "where ../../ would have led");
  const renamed = cli(other, ["import", pemFile, "--name", "Owner2"]);
  assert.equal(renamed.status, 0, renamed.stderr);
});

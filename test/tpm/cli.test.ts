/**
 * `bulwark tpm` end to end: the compiled CLI against a real swtpm and tpm2-tools files.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { X509Certificate, randomBytes } from "node:crypto";
import { promisify } from "node:util";
import { TPM_ALG } from "../../src/tpm/alg.js";
import { pcrSelection } from "../../src/tpm/pcr.js";
import { readPcrFile } from "../../src/tpm/files.js";
import { repoPath } from "../helpers/paths.js";
import { manufacturedState, startSwtpm, type Swtpm } from "../helpers/tpm-swtpm.js";

const execFileP = promisify(execFile);
let sw: Swtpm;
let dir: string;
const f = (n: string): string => path.join(dir, n);

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  await sw.transport.close();
  try {
    const r = await execFileP(process.execPath, [repoPath("dist/src/cli/main.js"), ...args], {
      encoding: "utf8",
      timeout: 60_000,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

before(async () => {
  sw = await startSwtpm({ manufacture: true });
  dir = mkdtempSync(path.join(os.tmpdir(), "bulwark-tpm-cli-"));
});
after(async () => {
  await sw?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("--help on the verb and each subcommand", async () => {
  for (const args of [
    ["tpm", "--help"],
    ["tpm", "pcrs", "--help"],
    ["tpm", "quote-verify", "--help"],
  ]) {
    const r = await cli(args);
    assert.equal(r.code, 0, args.join(" "));
    assert.match(r.stdout, /quote-verify --ak AK_PUB/);
  }
  const bad = await cli(["tpm", "frobnicate"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /CLI_ERR_USAGE/);
});

test("tpm pcrs reads the same values as our client and writes a tpm2-tools PCR file", async () => {
  await sw.tpm.pcrExtend(16, [{ hashAlg: TPM_ALG.SHA256, digest: randomBytes(32) }]);
  const sel = [pcrSelection(TPM_ALG.SHA256, [0, 7, 16]), pcrSelection(TPM_ALG.SHA1, [16])];
  const { values } = await sw.tpm.pcrRead(sel);
  const r = await cli([
    "tpm",
    "pcrs",
    "--tpm",
    sw.target,
    "--pcr-list",
    "sha256:0,7,16+sha1:16",
    "--json",
    "--output",
    f("p.pcrs"),
  ]);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { pcrs: Record<string, Record<string, string>> };
  assert.equal(j.pcrs["sha256"]?.["16"], Buffer.from(values.get(TPM_ALG.SHA256)!.get(16)!).toString("hex"));
  assert.equal(j.pcrs["sha1"]?.["16"], Buffer.from(values.get(TPM_ALG.SHA1)!.get(16)!).toString("hex"));
  const file = readPcrFile(new Uint8Array(readFileSync(f("p.pcrs"))));
  assert.deepEqual(file.values.get(TPM_ALG.SHA256)?.get(16), values.get(TPM_ALG.SHA256)?.get(16));
  const text = await cli(["tpm", "pcrs", "-T", sw.target]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /sha256:\n {4} 0 : 0x[0-9A-F]{64}/);
  const unreachable = await cli(["tpm", "pcrs", "--tpm", "swtpm:host=127.0.0.1,port=1"]);
  assert.equal(unreachable.code, 9);
  assert.match(unreachable.stderr, /TPM_ERR_TRANSPORT/);
});

test("tpm quote-verify accepts tpm2_quote output (TPM2B_PUBLIC and PEM AK) and refuses a wrong nonce with exit 4", async () => {
  await sw.tool("tpm2_createek", ["-c", f("ek.ctx"), "-G", "rsa", "-u", f("ek.pub")]);
  await sw.tool("tpm2_flushcontext", ["-t"]);
  await sw.tool("tpm2_createak", [
    "-C",
    f("ek.ctx"),
    "-c",
    f("ak.ctx"),
    "-G",
    "rsa",
    "-g",
    "sha256",
    "-s",
    "rsassa",
    "-u",
    f("ak.pub"),
    "-f",
    "tss",
  ]);
  await sw.tool("tpm2_flushcontext", ["-t"]);
  await sw.tool("tpm2_flushcontext", ["-s"]);
  await sw.tool("tpm2_readpublic", ["-c", f("ak.ctx"), "-f", "pem", "-o", f("ak.pem")]);
  await sw.tool("tpm2_flushcontext", ["-t"]);
  const nonce = randomBytes(16).toString("hex");
  await sw.tool("tpm2_quote", [
    "-c",
    f("ak.ctx"),
    "-l",
    "sha256:0,1,16",
    "-q",
    nonce,
    "-m",
    f("q.msg"),
    "-s",
    f("q.sig"),
    "-o",
    f("q.pcrs"),
    "-g",
    "sha256",
  ]);
  await sw.tool("tpm2_flushcontext", ["-t"]);
  await sw.tool("tpm2_quote", [
    "-c",
    f("ak.ctx"),
    "-l",
    "sha256:0,1,16",
    "-q",
    nonce,
    "-m",
    f("v.msg"),
    "-s",
    f("v.sig"),
    "-o",
    f("v.pcrs"),
    "-F",
    "values",
    "-g",
    "sha256",
  ]);
  await sw.tool("tpm2_flushcontext", ["-t"]);

  const base = ["tpm", "quote-verify", "--msg", f("q.msg"), "--sig", f("q.sig"), "--pcrs", f("q.pcrs")];
  const ok = await cli([
    ...base,
    "--ak",
    f("ak.pub"),
    "--nonce",
    nonce,
    "--pcr-list",
    "sha256:0,1,16",
    "--json",
  ]);
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  const j = JSON.parse(ok.stdout) as { ok: boolean; findings: unknown[]; akFormat: string };
  assert.equal(j.ok, true);
  assert.deepEqual(j.findings, []);
  assert.equal(j.akFormat, "TPM2B_PUBLIC");
  const pem = await cli([...base, "--ak", f("ak.pem"), "--nonce", nonce]);
  assert.equal(pem.code, 0, pem.stderr);
  assert.match(pem.stdout, /quote: VALID/);
  const values = await cli([
    "tpm",
    "quote-verify",
    "--msg",
    f("v.msg"),
    "--sig",
    f("v.sig"),
    "--pcrs",
    f("v.pcrs"),
    "--ak",
    f("ak.pub"),
    "--nonce",
    nonce,
  ]);
  assert.equal(values.code, 0, values.stderr);

  // PCR values as tpm2_pcrread prints them and as `bulwark tpm pcrs --json` prints them.
  const pcrread = await sw.tool("tpm2_pcrread", ["sha256:0,1,16"]);
  writeFileSync(f("pcrread.yaml"), pcrread.stdout);
  const ours = await cli(["tpm", "pcrs", "--tpm", sw.target, "--pcr-list", "sha256:0,1,16", "--json"]);
  writeFileSync(f("pcrs.json"), ours.stdout);
  for (const file of ["pcrread.yaml", "pcrs.json"]) {
    const t = await cli([
      "tpm",
      "quote-verify",
      "--msg",
      f("q.msg"),
      "--sig",
      f("q.sig"),
      "--pcrs",
      f(file),
      "--ak",
      f("ak.pub"),
      "--nonce",
      nonce,
    ]);
    assert.equal(t.code, 0, `${file}: ${t.stderr}`);
  }

  const bad = await cli([...base, "--ak", f("ak.pub"), "--nonce", "00", "--json"]);
  assert.equal(bad.code, 4);
  const jb = JSON.parse(bad.stdout) as {
    ok: boolean;
    findings: { id: string; expected: string; got: string }[];
  };
  assert.equal(jb.ok, false);
  assert.deepEqual(
    jb.findings.map((x) => x.id),
    ["quote.nonce"],
  );
  assert.equal(jb.findings[0]?.got, nonce);
  const text = await cli([...base, "--ak", f("ak.pub"), "--nonce", "00"]);
  assert.equal(text.code, 4);
  assert.match(text.stderr, /ERROR quote.nonce/);
  const missing = await cli([...base, "--ak", f("nope.pub"), "--nonce", nonce]);
  assert.equal(missing.code, 9);
  assert.match(missing.stderr, /TPM_ERR_READ/);
});

test("tpm make-credential writes a blob tpm2_activatecredential accepts; a non-EK is refused with findings", async () => {
  await sw.tool("tpm2_createek", ["-c", f("mc-ek.ctx"), "-G", "rsa", "-u", f("mc-ek.pub")]);
  await sw.tool("tpm2_flushcontext", ["-t"]);
  await sw.tool("tpm2_createak", [
    "-C",
    f("mc-ek.ctx"),
    "-c",
    f("mc-ak.ctx"),
    "-G",
    "ecc",
    "-g",
    "sha256",
    "-s",
    "ecdsa",
    "-u",
    f("mc-ak.pub"),
    "-f",
    "tss",
  ]);
  await sw.tool("tpm2_flushcontext", ["-t"]);
  await sw.tool("tpm2_flushcontext", ["-s"]);
  const secret = randomBytes(32);
  writeFileSync(f("mc.secret"), secret);
  const r = await cli([
    "tpm",
    "make-credential",
    "--ek",
    f("mc-ek.pub"),
    "--ak",
    f("mc-ak.pub"),
    "--secret",
    f("mc.secret"),
    "--output",
    f("mc.cred"),
  ]);
  assert.equal(r.code, 0, r.stderr);
  await sw.tool("tpm2_startauthsession", ["--policy-session", "-S", f("mc.session")]);
  await sw.tool("tpm2_policysecret", ["-S", f("mc.session"), "-c", "e"]);
  await sw.tool("tpm2_activatecredential", [
    "-c",
    f("mc-ak.ctx"),
    "-C",
    f("mc-ek.ctx"),
    "-i",
    f("mc.cred"),
    "-o",
    f("mc.out"),
    "-P",
    `session:${f("mc.session")}`,
  ]);
  await sw.tool("tpm2_flushcontext", ["-t"]);
  await sw.tool("tpm2_flushcontext", ["-s"]);
  assert.deepEqual(readFileSync(f("mc.out")), secret);

  const refused = await cli([
    "tpm",
    "make-credential",
    "--ek",
    f("mc-ak.pub"),
    "--ak",
    f("mc-ak.pub"),
    "--secret",
    f("mc.secret"),
    "--output",
    f("mc2.cred"),
    "--json",
  ]);
  assert.equal(refused.code, 4);
  const j = JSON.parse(refused.stdout) as { ok: boolean; findings: { id: string }[] };
  assert.equal(j.ok, false);
  assert.ok(j.findings.some((x) => x.id === "ek.attributes.decrypt"));
  assert.ok(j.findings.some((x) => x.id === "ek.attributes.sign"));
});

test("tpm ek-certs lists and writes the EK certificates from NV", async () => {
  const r = await cli(["tpm", "ek-certs", "--tpm", sw.target, "--output-dir", dir, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { certificates: { index: string; issuer: string }[] };
  assert.deepEqual(
    j.certificates.map((c) => c.index),
    ["0x01c00002", "0x01c00016"],
  );
  const der = readFileSync(f("ek-0x01c00002.der"));
  const cert = new X509Certificate(der);
  assert.equal(cert.issuer.replace(/\n/g, ", "), j.certificates[0]?.issuer);
  const ca = new X509Certificate(readFileSync(path.join(manufacturedState().caDir, "issuercert.pem")));
  assert.ok(cert.verify(ca.publicKey), "signed by swtpm_localca's issuer");
});

test('tpm quote-verify checks a quote with empty qualifying data (--nonce ""), as GCE\'s vTPM makes them', async () => {
  await sw.tool("tpm2_createek", ["-c", f("e-ek.ctx"), "-G", "rsa", "-u", f("e-ek.pub")]);
  await sw.tool("tpm2_flushcontext", ["-t"]);
  await sw.tool("tpm2_createak", [
    ...["-C", f("e-ek.ctx"), "-c", f("e-ak.ctx"), "-G", "rsa", "-g", "sha256", "-s", "rsassa"],
    ...["-u", f("e-ak.pub"), "-f", "tss"],
  ]);
  await sw.tool("tpm2_flushcontext", ["-t"]);
  await sw.tool("tpm2_flushcontext", ["-s"]);
  // No -q: tpm2_quote sends an empty TPM2B_DATA as qualifying data.
  await sw.tool("tpm2_quote", [
    ...["-c", f("e-ak.ctx"), "-l", "sha256:0,7", "-m", f("e.msg"), "-s", f("e.sig")],
    ...["-o", f("e.pcrs"), "-g", "sha256"],
  ]);
  await sw.tool("tpm2_flushcontext", ["-t"]);
  const base = ["tpm", "quote-verify", "--ak", f("e-ak.pub"), "--msg", f("e.msg"), "--sig", f("e.sig")];
  const ok = await cli([...base, "--pcrs", f("e.pcrs"), "--nonce", "", "--json"]);
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.equal((JSON.parse(ok.stdout) as { ok: boolean }).ok, true);
  const wrong = await cli([...base, "--nonce", "00"]);
  assert.equal(wrong.code, 4, "a non-empty nonce does not match an empty one");
  const missing = await cli(base);
  assert.equal(missing.code, 2, "leaving --nonce out is still a usage error");
  assert.match(missing.stderr, /needs --nonce/);
});

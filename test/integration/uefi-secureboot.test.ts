/**
 * The firmware is the oracle: NVRAM files Bulwark writes are booted under OVMF's secure-boot
 * firmware (q35, SMM) with Debian's signed shim → grub → kernel, and for every boot the
 * Authenticode verdict Bulwark computes for the first image (shim, the one OVMF itself checks
 * against db/dbx) under that NVRAM's db/dbx must equal what the firmware did.
 *
 * Ten boots (about 2 minutes under TCG on a loaded 2-core host): Microsoft UEFI CA template (boots, Secure Boot on),
 * MicrosoftWindows template (refused), UEFI CA with --secure-boot off (boots, Secure Boot off), an
 * empty store (setup mode: boots, Secure Boot off), a
 * custom template whose db holds only our certificate with shim re-signed by us (boots), the same
 * with that shim's hash in dbx (refused), a corrupted copy of Debian's shim under the UEFI CA
 * template (refused), and OpenSourceShieldedVM with shim's SbatLevel pre-seeded (boots, shim keeps
 * the level) and with a level revoking Debian's grub (refused by shim). A tenth boot has the guest
 * apply signed variable updates through efivarfs: edk2 must accept exactly those our verifier
 * accepts and store byte-identical results.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { bootGuest, type GuestBootReport } from "../../src/lab/boot.js";
import { buildGuestDisk, ensureGuestImage, espPaths, type GuestImage } from "../../src/lab/guest-image.js";
import { signPe } from "../../src/uefi/authenticode-sign.js";
import { authenticodeDigest, verifyImage } from "../../src/uefi/authenticode.js";
import { parsePe } from "../../src/uefi/pe.js";
import { createKeyFiles, installMicrosoftCertificates, loadKey } from "../../src/host/secureboot-store.js";
import { encodeSignatureDatabase, sha256List, x509List } from "../../src/uefi/siglist.js";
import { BULWARK_OWNER_GUID, Guids } from "../../src/uefi/guid.js";
import { makeCustomTemplate, resolveTemplate } from "../../src/uefi/templates.js";
import { buildSecureBootVarStore } from "../../src/uefi/varstore-build.js";
import {
  createEmptyVarStore,
  deleteVariable,
  encodeVarStore,
  getVariable,
  parseVarStore,
  setVariable,
} from "../../src/uefi/varstore.js";
import { sbatLevelVariableData } from "../../src/uefi/sbat.js";
import { shimVendorKeys } from "../../src/uefi/shim.js";
import { NV_BS_ATTRS, SECURE_BOOT_DB_ATTRS, efiTimeFromDate } from "../../src/uefi/variables.js";
import { applySignedUpdate, createSignedUpdate, verifySignedUpdate } from "../../src/uefi/auth-variable.js";
import { imagePolicyOf } from "../../src/uefi/varstore-report.js";
import { processAlive } from "../helpers/processes.js";
import { repoPath } from "../helpers/paths.js";

let work: string;
let stateDir: string;
let img: GuestImage;

function cli(...args: string[]): string {
  const r = spawnSync(
    process.execPath,
    [repoPath("dist/src/cli/main.js"), "secureboot", ...args, "--state-dir", stateDir],
    {
      encoding: "utf8",
    },
  );
  assert.equal(r.status, 0, `bulwark secureboot ${args.join(" ")}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** Our verdict for an image under a varstore file's db/dbx. */
async function ourVerdict(varsFile: string, image: Uint8Array): Promise<boolean> {
  const store = parseVarStore(new Uint8Array(await readFile(varsFile)));
  return verifyImage(image, imagePolicyOf(store)).ok;
}

function assertReaped(r: GuestBootReport): void {
  for (const pid of r.pids) assert.equal(processAlive(pid), false, `process ${pid} survived the boot`);
}

async function boot(disk: string, vars: string): Promise<GuestBootReport> {
  const r = await bootGuest({ disk, vars, tpm: false, timeoutMs: 180_000 });
  assertReaped(r);
  return r;
}

function booted(r: GuestBootReport): boolean {
  if (r.ready && r.outcome === "poweroff") return true;
  assert.equal(r.outcome, "refused", `neither booted nor refused: ${r.outcome}\n${r.serial.slice(-1500)}`);
  assert.equal(r.ready, false);
  return false;
}

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), "bulwark-uefi-sb-"));
  stateDir = path.join(work, "state");
  await installMicrosoftCertificates({ stateDir });
  img = await ensureGuestImage("base");
});

after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

test("MicrosoftUEFICertificateAuthority: Debian's shim → grub → kernel boots with Secure Boot on", async () => {
  const vars = path.join(work, "uefica.fd");
  cli("vars", "create", "--template", "MicrosoftUEFICertificateAuthority", "--out", vars);
  const shim = new Uint8Array(await readFile(img.bootChain.shim));
  assert.equal(await ourVerdict(vars, shim), true, "our verifier allows Debian's shim under the UEFI CA db");
  const r = await boot(img.disk, vars);
  assert.equal(booted(r), true, r.serial.slice(-1500));
  assert.equal(r.secureBoot, true);
});

test("MicrosoftWindows: the same chain is refused by the firmware and by our verifier", async () => {
  const vars = path.join(work, "windows.fd");
  cli("vars", "create", "--template", "1734c6e8-3154-4dda-ba5f-a874cc483422", "--out", vars);
  const shim = new Uint8Array(await readFile(img.bootChain.shim));
  assert.equal(await ourVerdict(vars, shim), false);
  const r = await boot(img.disk, vars);
  assert.equal(booted(r), false);
  assert.match(r.refusal ?? "", /Access Denied|Security Violation/);
});

test("--secure-boot off: keys stay enrolled, the chain boots and the guest reports Secure Boot disabled", async () => {
  const vars = path.join(work, "off.fd");
  cli(
    "vars",
    "create",
    "--template",
    "MicrosoftUEFICertificateAuthority",
    "--secure-boot",
    "off",
    "--out",
    vars,
  );
  const shown = JSON.parse(cli("vars", "show", vars, "--json")) as {
    secureBoot: string;
    policy: { name: string }[];
  };
  assert.equal(shown.secureBoot, "disabled");
  assert.deepEqual(
    shown.policy.map((p) => p.name),
    ["PK", "KEK", "db", "dbx"],
  );
  const r = await boot(img.disk, vars);
  assert.equal(booted(r), true, r.serial.slice(-1500));
  assert.equal(r.secureBoot, false);
});

test("an empty store (no PK: setup mode) boots the chain with Secure Boot disabled, as reported", async () => {
  const vars = path.join(work, "empty.fd");
  await writeFile(vars, createEmptyVarStore("4m"));
  const shown = JSON.parse(cli("vars", "show", vars, "--json")) as { secureBoot: string };
  assert.equal(shown.secureBoot, "setup-mode");
  const r = await boot(img.disk, vars);
  assert.equal(booted(r), true, r.serial.slice(-1500));
  assert.equal(r.secureBoot, false);
});

test("custom template with only our certificate: our re-signed shim boots; with its hash in dbx it is refused", async () => {
  const keyDir = path.join(work, "keys");
  await createKeyFiles({ cn: "Bulwark Test db", dir: keyDir, kind: "db" });
  await createKeyFiles({ cn: "Bulwark Test KEK", dir: keyDir, kind: "KEK" });
  const db = await loadKey(keyDir, "db");
  const kek = await loadKey(keyDir, "KEK");
  const pk = await loadKey(keyDir, "PK").catch(() => undefined);
  assert.equal(pk, undefined);
  const debianShim = new Uint8Array(await readFile(img.bootChain.shim));
  const ourShim = signPe(debianShim, { key: db.key, certificate: db.cert, mode: "replace" });
  const disk = await buildGuestDisk({
    variant: "base",
    out: path.join(work, "resigned.img"),
    overrides: { [espPaths.shim]: ourShim },
  });
  const installationPk = (await loadKey(keyDir, "db")).cert; // any certificate serves as this test's PK
  const custom = makeCustomTemplate(
    {
      name: "OnlyOurs",
      source: "test",
      vars: {
        KEK: encodeSignatureDatabase([x509List(kek.cert, BULWARK_OWNER_GUID)]),
        db: encodeSignatureDatabase([x509List(db.cert, BULWARK_OWNER_GUID)]),
        dbx: new Uint8Array(0),
      },
    },
    [],
    () => "00000000-0000-4000-8000-000000000001",
  );
  const allowedVars = path.join(work, "custom.fd");
  await writeFile(
    allowedVars,
    buildSecureBootVarStore({ template: resolveTemplate(custom, installationPk) }),
  );
  assert.equal(await ourVerdict(allowedVars, ourShim), true);
  assert.equal(
    await ourVerdict(allowedVars, debianShim),
    false,
    "Microsoft-signed shim is not trusted by this db",
  );
  const r1 = await boot(disk, allowedVars);
  assert.equal(booted(r1), true, r1.serial.slice(-1500));
  assert.equal(r1.secureBoot, true);

  const digest = authenticodeDigest(parsePe(ourShim), "sha256");
  const revoked = { ...custom, dbx: encodeSignatureDatabase([sha256List([digest], BULWARK_OWNER_GUID)]) };
  const revokedVars = path.join(work, "custom-dbx.fd");
  await writeFile(
    revokedVars,
    buildSecureBootVarStore({ template: resolveTemplate(revoked, installationPk) }),
  );
  assert.equal(await ourVerdict(revokedVars, ourShim), false);
  const r2 = await boot(disk, revokedVars);
  assert.equal(booted(r2), false);
});

test("grub and kernel: our verdicts under what shim trusts (db + its vendor certificate, dbx + its built-in dbx)", async () => {
  // OVMF verifies only shim; shim verifies grub and (through the shim lock protocol) the kernel.
  // The boot in the first test is the oracle for the intact files; test/integration/boot.test.ts
  // boots the same one-byte grub corruption as below and sees shim refuse it.
  const shim = new Uint8Array(await readFile(img.bootChain.shim));
  const vendor = shimVendorKeys(shim);
  assert.equal(vendor.authorized.length, 1);
  const store = parseVarStore(new Uint8Array(await readFile(path.join(work, "uefica.fd"))));
  const policy = imagePolicyOf(store);
  const vendorCerts = vendor.authorized.flatMap((l) => l.entries.map((e) => e.data));
  const shimPolicy = {
    db: { x509: [...policy.db.x509, ...vendorCerts], sha256: policy.db.sha256 },
    dbx: {
      x509: policy.dbx.x509,
      sha256: [...policy.dbx.sha256, ...vendor.deauthorized.flatMap((l) => l.entries.map((e) => e.data))],
    },
  };
  for (const file of [img.bootChain.grub, img.bootChain.kernel]) {
    const bytes = Buffer.from(await readFile(file));
    assert.equal(verifyImage(bytes, shimPolicy).ok, true, `${path.basename(file)} allowed under shim's keys`);
    assert.equal(verifyImage(bytes, policy).ok, false, `${path.basename(file)} is not trusted by db alone`);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = (bytes[at] as number) ^ 0xff;
    assert.equal(verifyImage(bytes, shimPolicy).ok, false, `corrupted ${path.basename(file)} refused`);
  }
});

test("a corrupted copy of Debian's shim: our verifier and the firmware both refuse it", async () => {
  const shim = Buffer.from(await readFile(img.bootChain.shim));
  const at = Math.floor(shim.length / 2);
  shim[at] = (shim[at] as number) ^ 0xff;
  const vars = path.join(work, "uefica.fd");
  assert.equal(await ourVerdict(vars, shim), false);
  const disk = await buildGuestDisk({
    variant: "base",
    out: path.join(work, "corrupt-shim.img"),
    overrides: { [espPaths.shim]: shim },
  });
  const r = await boot(disk, vars);
  assert.equal(booted(r), false);
});

test("OpenSourceShieldedVM: SbatLevel pre-seeded from Debian's shim is kept by shim and enforced", async () => {
  const shimFile = img.bootChain.shim;
  const shielded = path.join(stateDir, "..", "shielded-state");
  const r0 = spawnSync(
    process.execPath,
    [
      repoPath("dist/src/cli/main.js"),
      "secureboot",
      "setup",
      "--shim",
      shimFile,
      "--state-dir",
      shielded,
      "--json",
    ],
    { encoding: "utf8" },
  );
  assert.equal(r0.status, 0, r0.stderr);
  const levels = (JSON.parse(r0.stdout) as { sbat: { levels: { latest: string } } }).sbat.levels;
  const vars = path.join(work, "shielded.fd");
  const r1 = spawnSync(
    process.execPath,
    [
      repoPath("dist/src/cli/main.js"),
      "secureboot",
      "vars",
      "create",
      "--template",
      "OpenSourceShieldedVM",
      "--out",
      vars,
      "--state-dir",
      shielded,
    ],
    { encoding: "utf8" },
  );
  assert.equal(r1.status, 0, r1.stderr);
  const after = path.join(work, "shielded-after.fd");
  const r = await bootGuest({ disk: img.disk, vars, tpm: false, timeoutMs: 180_000, keepVars: after });
  assertReaped(r);
  assert.equal(booted(r), true, r.serial.slice(-1500));
  assert.equal(r.secureBoot, true);
  const kept = getVariable(
    parseVarStore(new Uint8Array(await readFile(after))),
    "SbatLevel",
    Guids.SHIM_LOCK_GUID,
  );
  assert.equal(Buffer.from(kept!.data).toString("latin1"), levels.latest, "shim kept the pre-seeded level");

  // A level that revokes Debian's grub (grub,5) is enforced by shim: grub is refused.
  const revoking = setVariable(parseVarStore(new Uint8Array(await readFile(vars))), {
    name: "SbatLevel",
    guid: Guids.SHIM_LOCK_GUID,
    attributes: NV_BS_ATTRS,
    data: sbatLevelVariableData("sbat,1,2099010100\nshim,4\ngrub,6\n"),
  });
  const revokedVars = path.join(work, "shielded-revoked.fd");
  await writeFile(revokedVars, encodeVarStore(revoking));
  const r2 = await boot(img.disk, revokedVars);
  assert.equal(booted(r2), false);
  // shim's refusal of grub (OVMF itself accepted shim: the only change is SbatLevel).
  assert.match(r2.refusal ?? "", /Verification failed/, `shim refused with another message: ${r2.refusal}`);
});

test("signed updates (EFI_VARIABLE_AUTHENTICATION_2): edk2 accepts exactly what our verifier accepts, with identical results", async () => {
  // efivarfs marks existing PK/KEK/db/dbx files immutable and the guest has no chattr, so each
  // update creates a variable the store does not hold yet: KEK (by the PK), then dbx (by that new
  // KEK), then dbt (by a key nobody enrolled). One boot; the guest writes them in order.
  const keyDir = path.join(work, "update-keys");
  await createKeyFiles({ cn: "Update KEK", dir: keyDir, kind: "KEK" });
  await createKeyFiles({ cn: "Nobody", dir: keyDir, kind: "db" });
  const kek = await loadKey(keyDir, "KEK");
  const nobody = await loadKey(keyDir, "db");
  const base = path.join(work, "updates-base.fd");
  cli("vars", "create", "--template", "MicrosoftUEFICertificateAuthority", "--out", base);
  const pk = await loadKey(path.join(stateDir, "secureboot"), "PK");
  let store = parseVarStore(new Uint8Array(await readFile(base)));
  store = deleteVariable(
    deleteVariable(store, "KEK", Guids.EFI_GLOBAL_VARIABLE),
    "dbx",
    Guids.EFI_IMAGE_SECURITY_DATABASE_GUID,
  );
  const vars = path.join(work, "updates.fd");
  await writeFile(vars, encodeVarStore(store));

  const updates = [
    {
      name: "KEK",
      guid: Guids.EFI_GLOBAL_VARIABLE,
      signer: pk,
      when: "2026-02-01T00:00:00Z",
      data: encodeSignatureDatabase([x509List(kek.cert, BULWARK_OWNER_GUID)]),
    },
    {
      name: "dbx",
      guid: Guids.EFI_IMAGE_SECURITY_DATABASE_GUID,
      signer: kek,
      when: "2026-03-01T12:00:00Z",
      data: encodeSignatureDatabase([sha256List([new Uint8Array(32).fill(0xd1)], BULWARK_OWNER_GUID)]),
    },
    {
      name: "dbt",
      guid: Guids.EFI_IMAGE_SECURITY_DATABASE_GUID,
      signer: nobody,
      when: "2026-04-01T00:00:00Z",
      data: encodeSignatureDatabase([sha256List([new Uint8Array(32).fill(0xd2)], BULWARK_OWNER_GUID)]),
    },
  ];
  const ours: boolean[] = [];
  let script = "";
  updates.forEach((u, i) => {
    const auth = createSignedUpdate({
      name: u.name,
      guid: u.guid,
      attributes: SECURE_BOOT_DB_ATTRS,
      timeStamp: efiTimeFromDate(new Date(u.when)),
      data: u.data,
      key: u.signer.key,
      certificate: u.signer.cert,
    });
    const ok = verifySignedUpdate(store, u.name, u.guid, SECURE_BOOT_DB_ATTRS, auth).ok;
    ours.push(ok);
    if (ok) store = applySignedUpdate(store, u.name, u.guid, SECURE_BOOT_DB_ATTRS, auth);
    // efivarfs: 4 attribute bytes, then the EFI_VARIABLE_AUTHENTICATION_2 blob, in one write().
    const blob = Buffer.concat([Buffer.from(Uint32Array.of(SECURE_BOOT_DB_ATTRS).buffer), auth]);
    script += `echo ${blob.toString("base64")} | base64 -d > /tmp/u${i}\n`;
    script += `dd if=/tmp/u${i} of=/sys/firmware/efi/efivars/${u.name}-${u.guid} bs=65536 2>/dev/null; echo "UPDATE${i} rc=$?"\n`;
  });
  assert.deepEqual(
    ours,
    [true, true, false],
    "our verdicts: PK may set KEK, the new KEK may set dbx, an unenrolled key may not",
  );
  const after = path.join(work, "updates-after.fd");
  const r = await bootGuest({
    disk: img.disk,
    vars,
    tpm: false,
    timeoutMs: 180_000,
    script,
    keepVars: after,
  });
  assertReaped(r);
  assert.equal(r.ready, true, r.serial.slice(-1500));
  const firmware = updates.map((_, i) => new RegExp(`UPDATE${i} rc=0`).test(r.scriptOutput ?? ""));
  assert.deepEqual(
    firmware,
    ours,
    `firmware accepted ${JSON.stringify(firmware)}; guest output:\n${r.scriptOutput}`,
  );
  const real = parseVarStore(new Uint8Array(await readFile(after)));
  for (const u of updates) {
    const got = getVariable(real, u.name, u.guid);
    const want = getVariable(store, u.name, u.guid);
    assert.equal(got === undefined, want === undefined, u.name);
    if (got && want) {
      assert.deepEqual(got.data, want.data, `${u.name} data as edk2 stored it`);
      assert.deepEqual(got.timestamp, want.timestamp, `${u.name} timestamp`);
      assert.equal(got.attributes, want.attributes, `${u.name} attributes`);
    }
  }
});

/**
 * Makes test/vectors/uefi/authvar-signedattrs and records edk2's verdict on every case:
 * `node dist/test/helpers/uefi-authvar-vectors.js` (one guest boot, about a minute under TCG). Run by hand only, when a case is added or the firmware changes; the unit test reads the
 * stored files, test/integration/uefi-authvar-oracle.test.ts re-derives the verdicts live.
 *
 * Reproducible: the keys are kept in the folder (throw-away test keys, made once), the hand-made
 * cases and `openssl cms -noattr` are deterministic (RSA PKCS #1 v1.5); only the two cases with
 * openssl's default attributes change, through its signingTime.
 */
import { createPrivateKey, generateKeyPairSync } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { createCertificate } from "../../src/asn1/x509.js";
import {
  CASES,
  KEY_ISSUERS,
  buildCase,
  caseVarStore,
  readCaseKeys,
  type KeyName,
} from "./uefi-authvar-cases.js";
import { judgeByFirmware } from "./uefi-authvar-oracle.js";
import { AUTHVAR_VECTOR_DIR, caseAuthPath, type RecordedCase } from "./uefi-authvar-vectors-read.js";
import { tempDir } from "./uefi-varstore-fixtures.js";

const SUBJECTS: Record<KeyName, string> = {
  pk: "CN=Bulwark authvar test PK",
  kek: "CN=Bulwark authvar test KEK",
  stranger: "CN=Bulwark authvar test stranger",
  pkLeaf: "CN=Bulwark authvar test leaf of the PK",
  kekLeaf: "CN=Bulwark authvar test leaf of the KEK",
};

/** Makes the keys a folder lacks; issuers first (KEY_ISSUERS lists self-signed ones first). */
function ensureKeys(dir: string): void {
  for (const n of Object.keys(SUBJECTS) as KeyName[]) {
    if (existsSync(path.join(dir, `${n}.key.pem`))) continue;
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const issuer = KEY_ISSUERS[n];
    const cert = createCertificate({
      subject: SUBJECTS[n],
      publicKey,
      signingKey: issuer
        ? createPrivateKey(readFileSync(path.join(dir, `${issuer}.key.pem`), "utf8"))
        : privateKey,
      ...(issuer
        ? { issuerCertificate: new Uint8Array(readFileSync(path.join(dir, `${issuer}.crt.der`))) }
        : {}),
      ca: issuer === undefined,
      notBefore: new Date("2026-01-01T00:00:00Z"),
      notAfter: new Date("2046-01-01T00:00:00Z"),
    });
    writeFileSync(path.join(dir, `${n}.key.pem`), privateKey.export({ type: "pkcs8", format: "pem" }));
    writeFileSync(path.join(dir, `${n}.crt.der`), cert);
  }
}

async function main(): Promise<void> {
  const dir = AUTHVAR_VECTOR_DIR;
  mkdirSync(dir, { recursive: true });
  ensureKeys(dir);
  const keys = readCaseKeys(dir);
  const oracleCases = CASES.map((def) => {
    const auth = buildCase(def, keys);
    writeFileSync(caseAuthPath(def.id), auth);
    return { id: def.id, auth };
  });
  const { dir: tmp, cleanup } = tempDir("bulwark-authvar-vars-");
  try {
    const vars = path.join(tmp, "vars.fd");
    writeFileSync(vars, caseVarStore(keys));
    const verdicts = await judgeByFirmware(vars, oracleCases, (m) => process.stderr.write(`${m}\n`));
    const recorded: RecordedCase[] = CASES.map((def) => {
      const o = verdicts.get(def.id);
      if (!o) throw new Error(`no firmware verdict for ${def.id}`);
      return {
        id: def.id,
        description: def.description,
        edk2: o.accepted ? "accepted" : "refused",
        ...(o.error ? { edk2Error: o.error } : {}),
      };
    });
    const doc = {
      firmware:
        "Debian 12 ovmf 2022.11-6+deb12u2 OVMF_CODE_4M.secboot.fd (edk2-stable202211, SMM), QEMU q35 TCG",
      how: "test/helpers/uefi-authvar-vectors.ts: the guest test image (tpm2tools variant) writes each case through efivarfs to db (attributes 0x67 = NV|BS|RT|TIME_BASED_AUTH|APPEND_WRITE, then the .auth, one write() each, all through one open descriptor) on an NVRAM with PK and KEK enrolled, no db, SecureBootEnable 0; accepted = the write succeeded, and db as the firmware left it is exactly the accepted cases' data in order",
      recorded: new Date().toISOString().slice(0, 10),
      cases: recorded,
    };
    writeFileSync(path.join(dir, "cases.json"), `${JSON.stringify(doc, null, 2)}\n`);
    for (const c of recorded) process.stdout.write(`${c.id.padEnd(28)} ${c.edk2} ${c.edk2Error ?? ""}\n`);
  } finally {
    cleanup();
  }
}

await main();

/**
 * The firmware oracle for signed variable updates: OVMF (edk2's AuthVariableLib, in SMM) judges
 * each case's `.auth` when the guest test image writes it through efivarfs, and the host reads
 * the NVRAM the firmware left to see what it stored. One boot for all cases.
 *
 * efivarfs makes every file of an existing PK/KEK/db/dbx variable immutable (the guest has no
 * chattr), so the guest opens db-<guid> once, creating it (db does not exist yet), and writes
 * every case through that one descriptor: each write() is one SetVariable() with the attributes
 * in its first 4 bytes, here NV|BS|RT|TIME_BASED_AUTHENTICATED_WRITE_ACCESS|APPEND_WRITE. A
 * refused write changes nothing; an accepted one appends the case's own SHA-256 entry (appends
 * skip the timestamp ordering), so the cases are independent and db ends as the accepted cases'
 * data in order.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { bootGuest } from "../../src/lab/boot.js";
import { ensureGuestImage } from "../../src/lab/guest-image.js";
import { parseSignedUpdate } from "../../src/uefi/auth-variable.js";
import { getVariable, parseVarStore } from "../../src/uefi/varstore.js";
import { SECURE_BOOT_DB_ATTRS } from "../../src/uefi/variables.js";
import { CASE_ATTRS, DB_GUID, TARGET } from "./uefi-authvar-cases.js";

export interface OracleCase {
  readonly id: string;
  /** The case's `.auth` (EFI_VARIABLE_AUTHENTICATION_2 ‖ data) for db. */
  readonly auth: Uint8Array;
}

export interface OracleOutcome {
  readonly accepted: boolean;
  /** The write's error as the guest's dd reported it (errno text), for refusals. */
  readonly error?: string;
}

const MARK = "AUTHVAR";

function guestScript(cases: readonly OracleCase[]): string {
  const attrs = Buffer.from(Uint32Array.of(CASE_ATTRS).buffer);
  const lines = [`exec 3>/sys/firmware/efi/efivars/${TARGET}-${DB_GUID}`];
  for (const c of cases) {
    // efivarfs: 4 attribute bytes, then EFI_VARIABLE_AUTHENTICATION_2 ‖ data, in one write().
    lines.push(`echo ${Buffer.concat([attrs, c.auth]).toString("base64")} | base64 -d > /tmp/case`);
    lines.push(
      `if dd if=/tmp/case bs=65536 2>/tmp/err >&3; then echo "${MARK} ${c.id} accepted"; ` +
        `else echo "${MARK} ${c.id} refused $(tr '\\n' ' ' < /tmp/err)"; fi`,
    );
  }
  lines.push("exec 3>&-");
  return `${lines.join("\n")}\n`;
}

/**
 * Boots the guest once on a copy of `varsFile` (which must hold no db) and has it apply every
 * case. Checks the NVRAM the boot left: db holds exactly the accepted cases' data, in order, with
 * db's attributes (APPEND_WRITE is not stored).
 */
export async function judgeByFirmware(
  varsFile: string,
  cases: readonly OracleCase[],
  progress: (m: string) => void = () => {},
): Promise<Map<string, OracleOutcome>> {
  const img = await ensureGuestImage("tpm2tools", { progress });
  const work = await mkdtemp(path.join(os.tmpdir(), "bulwark-authvar-oracle-"));
  try {
    const kept = path.join(work, "after.fd");
    const r = await bootGuest({
      disk: img.disk,
      vars: varsFile,
      tpm: false,
      timeoutMs: 300_000,
      script: guestScript(cases),
      keepVars: kept,
    });
    if (r.outcome !== "poweroff" || r.scriptExitCode === null) {
      throw new Error(`the guest did not run the cases (${r.outcome}):\n${r.serial.slice(-2000)}`);
    }
    const out = new Map<string, OracleOutcome>();
    for (const line of (r.scriptOutput ?? "").split("\n")) {
      const m = new RegExp(`^${MARK} (\\S+) (accepted|refused)\\s*(.*)$`).exec(line.trim());
      if (!m) continue;
      out.set(
        m[1] as string,
        m[2] === "accepted" ? { accepted: true } : { accepted: false, error: m[3] ?? "" },
      );
    }
    const missing = cases.filter((c) => !out.has(c.id)).map((c) => c.id);
    if (missing.length)
      throw new Error(`no outcome for ${missing.join(", ")}; guest output:\n${r.scriptOutput}`);
    progress(`one boot, ${cases.length} cases, ${r.seconds.toFixed(0)} s`);

    const accepted = cases.filter((c) => out.get(c.id)?.accepted);
    const want = Buffer.concat(accepted.map((c) => parseSignedUpdate(c.auth).data));
    const db = getVariable(parseVarStore(new Uint8Array(await readFile(kept))), TARGET, DB_GUID);
    if (!db) {
      if (accepted.length) throw new Error("the guest reported acceptances, yet the firmware stored no db");
    } else {
      if (!Buffer.from(db.data).equals(want)) {
        throw new Error(
          `db as the firmware stored it is not the accepted cases' data (${accepted.map((c) => c.id)})`,
        );
      }
      if (db.attributes !== SECURE_BOOT_DB_ATTRS) {
        throw new Error(
          `db attributes 0x${db.attributes.toString(16)}, not 0x${SECURE_BOOT_DB_ATTRS.toString(16)}`,
        );
      }
    }
    return out;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

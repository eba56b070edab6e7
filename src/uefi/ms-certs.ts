/**
 * The Microsoft Secure Boot certificates and revocation list, taken from a real variable store
 * on the machine (Debian's /usr/share/OVMF/OVMF_VARS_4M.ms.fd, whose KEK and db Debian enrolled
 * from Microsoft's published certificates). Nothing here is pasted in: certificates are found by
 * their subject common name in the store's KEK and db, and the dbx is copied as stored.
 *
 * Pure: takes the store bytes, returns the set. The setup step that reads the file and writes
 * the set to the key directory is secureboot-files.ts.
 */
import { createHash } from "node:crypto";
import { Guids } from "./guid.js";
import { decodeSignatureDatabase, describeEntry } from "./siglist.js";
import { getVariable, parseVarStore } from "./varstore.js";
import { uefiError } from "./errors.js";
import type { SbatLevels } from "./sbat.js";

/** Roles of the Microsoft certificates, by the subject common names Microsoft publishes. */
export const MICROSOFT_ROLES = {
  "kek-ca-2011": "Microsoft Corporation KEK CA 2011",
  "kek-2k-ca-2023": "Microsoft Corporation KEK 2K CA 2023",
  "windows-production-pca-2011": "Microsoft Windows Production PCA 2011",
  "windows-uefi-ca-2023": "Windows UEFI CA 2023",
  "uefi-ca-2011": "Microsoft Corporation UEFI CA 2011",
  "uefi-ca-2023": "Microsoft UEFI CA 2023",
  "option-rom-uefi-ca-2023": "Microsoft Option ROM UEFI CA 2023",
} as const;
export type MicrosoftRole = keyof typeof MICROSOFT_ROLES;

export interface MicrosoftCertificate {
  readonly role: MicrosoftRole;
  readonly subject: string;
  readonly sha256: string;
  readonly der: Uint8Array;
}

export interface MicrosoftSet {
  /** Where it came from (path or description) and the SHA-256 of those bytes. */
  readonly source: string;
  readonly sourceSha256: string;
  readonly certificates: readonly MicrosoftCertificate[];
  /** The dbx variable data of the source store (an encoded signature database). */
  readonly dbx: Uint8Array;
  /** SBAT levels from a signed shim's .sbatlevel section, when setup was given one. */
  readonly sbat?: { readonly source: string; readonly sourceSha256: string; readonly levels: SbatLevels };
}

const ROLE_BY_CN = new Map<string, MicrosoftRole>(
  Object.entries(MICROSOFT_ROLES).map(([role, cn]) => [cn, role as MicrosoftRole]),
);

/** Finds the Microsoft certificates and the dbx in a Secure Boot OVMF variable store. */
export function extractMicrosoftSet(storeBytes: Uint8Array, source: string): MicrosoftSet {
  const store = parseVarStore(storeBytes);
  const found = new Map<MicrosoftRole, MicrosoftCertificate>();
  for (const [name, guid] of [
    ["KEK", Guids.EFI_GLOBAL_VARIABLE],
    ["db", Guids.EFI_IMAGE_SECURITY_DATABASE_GUID],
  ] as const) {
    const v = getVariable(store, name, guid);
    if (!v) continue;
    for (const list of decodeSignatureDatabase(v.data)) {
      for (const e of list.entries) {
        const d = describeEntry(list.type, e);
        if (d.kind !== "x509") continue;
        const cn = /(?:^|, )CN=([^,]+)/.exec(d.subject)?.[1];
        const role = cn === undefined ? undefined : ROLE_BY_CN.get(cn);
        if (role && d.subject.includes("O=Microsoft Corporation") && !found.has(role)) {
          found.set(role, { role, subject: d.subject, sha256: d.sha256, der: Uint8Array.from(e.data) });
        }
      }
    }
  }
  const required: MicrosoftRole[] = ["kek-ca-2011", "windows-production-pca-2011", "uefi-ca-2011"];
  const missing = required.filter((r) => !found.has(r));
  if (missing.length) {
    throw uefiError(
      "UEFI_ERR_MS_CERTS_MISSING",
      `${source} lacks ${missing.map((r) => MICROSOFT_ROLES[r]).join(", ")}`,
      { source },
    );
  }
  const dbx = getVariable(store, "dbx", Guids.EFI_IMAGE_SECURITY_DATABASE_GUID);
  return {
    source,
    sourceSha256: createHash("sha256").update(storeBytes).digest("hex"),
    certificates: [...found.values()],
    dbx: dbx ? Uint8Array.from(dbx.data) : new Uint8Array(0),
  };
}

/**
 * Builds a VM's NVRAM (an OVMF variable store) from a resolved Secure Boot template.
 *
 * How OVMF decides Secure Boot (edk2 SecurityPkg/Library/AuthVariableLib/AuthVariableLib.c,
 * AuthVariableLibInitialize; DxeImageVerificationLib): with a PK enrolled the platform is in user
 * mode; the edk2 vendor variable SecureBootEnable (EFI_SECURE_BOOT_ENABLE_DISABLE GUID, UINT8)
 * then decides, and the read-only SecureBoot variable is 1 only when PK is present and
 * SecureBootEnable is 1 (a missing SecureBootEnable is created as 1). Image verification is
 * skipped when SecureBoot is 0. So `secureBoot: false` keeps every key enrolled (the VM can be
 * switched back without re-enrolment, and the OS never sees setup mode, where any software could
 * enrol its own PK) and writes SecureBootEnable = 0. CustomMode is written as 0 (standard mode).
 *
 * Deterministic: the same template, switch and timestamp give the same bytes.
 */
import { Guids } from "./guid.js";
import { encodeSignatureDatabase } from "./siglist.js";
import type { ResolvedTemplate } from "./templates.js";
import { NV_BS_ATTRS, SECURE_BOOT_DB_ATTRS, zeroTime, type EfiTime } from "./variables.js";
import {
  createEmptyVarStore,
  deleteVariable,
  encodeVarStore,
  getVariable,
  parseVarStore,
  setVariable,
  type Edk2VarStore,
  type VarStoreSize,
} from "./varstore.js";

export interface BuildOptions {
  readonly template: ResolvedTemplate;
  /** Default true. */
  readonly secureBoot?: boolean;
  /** Default "4m" (the 540 KiB store of OVMF_CODE_4M; the 128 KiB "2m" store fits far less). */
  readonly size?: VarStoreSize;
  /** TimeStamp of PK/KEK/db/dbx; default all-zero, so any later signed update is newer. */
  readonly timestamp?: EfiTime;
  /** Start from this store instead of an empty one (its other variables are kept). */
  readonly base?: Uint8Array;
}

/** Sets PK, KEK, db, dbx, SecureBootEnable, CustomMode and the template's extra variables (SbatLevel). */
export function applyTemplate(store: Edk2VarStore, o: BuildOptions): Edk2VarStore {
  const ts = o.timestamp ?? zeroTime();
  let s = store;
  const put = (name: "PK" | "KEK" | "db" | "dbx", lists: ResolvedTemplate["PK"]) => {
    const guid =
      name === "db" || name === "dbx" ? Guids.EFI_IMAGE_SECURITY_DATABASE_GUID : Guids.EFI_GLOBAL_VARIABLE;
    if (lists.length === 0) {
      // A template without this variable: drop what a previous template left in a base store.
      if (getVariable(s, name, guid)) s = deleteVariable(s, name, guid);
      return;
    }
    s = setVariable(s, {
      name,
      guid,
      attributes: SECURE_BOOT_DB_ATTRS,
      data: encodeSignatureDatabase(lists),
      timestamp: ts,
    });
  };
  put("PK", o.template.PK);
  put("KEK", o.template.KEK);
  put("db", o.template.db);
  put("dbx", o.template.dbx);
  s = setVariable(s, {
    name: "SecureBootEnable",
    guid: Guids.EFI_SECURE_BOOT_ENABLE_DISABLE,
    attributes: NV_BS_ATTRS,
    data: new Uint8Array([o.secureBoot === false ? 0 : 1]),
  });
  s = setVariable(s, {
    name: "CustomMode",
    guid: Guids.EFI_CUSTOM_MODE_ENABLE_GUID,
    attributes: NV_BS_ATTRS,
    data: new Uint8Array([0]),
  });
  for (const v of o.template.extraVariables) s = setVariable(s, v);
  return s;
}

/** The bytes of a new NVRAM file for `template`. */
export function buildSecureBootVarStore(o: BuildOptions): Uint8Array {
  const base = parseVarStore(o.base ?? createEmptyVarStore(o.size ?? "4m"));
  return encodeVarStore(applyTemplate(base, o));
}

/**
 * A VM's NVRAM, created from its Secure Boot template: this installation's PK, the template's
 * KEK/db/dbx (Microsoft certificates extracted from Debian's OVMF_VARS_4M.ms.fd at setup), and
 * SecureBootEnable per the VM's switch.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import {
  loadCustomTemplates,
  ensureInstallationPk,
  installMicrosoftCertificates,
  loadMicrosoftSet,
  secureBootDir,
} from "../secureboot-store.js";
import { findTemplate, resolveTemplate } from "../../uefi/templates.js";
import { buildSecureBootVarStore } from "../../uefi/varstore-build.js";
import { writeFileAtomic } from "../../io/atomic.js";
import path from "node:path";
import type { VmConfig } from "./config.js";
import type { VmPaths } from "./store.js";

export async function buildNvram(stateDir: string, c: VmConfig, base?: Uint8Array): Promise<Uint8Array> {
  const template = findTemplate(c.firmware.template, await loadCustomTemplates(stateDir));
  const pk = await ensureInstallationPk(stateDir);
  let ms;
  if (template.kind !== "custom") {
    if (!existsSync(path.join(secureBootDir(stateDir), "microsoft", "manifest.json"))) {
      await installMicrosoftCertificates({ stateDir });
    }
    ms = await loadMicrosoftSet(stateDir);
  }
  const resolved = resolveTemplate(template, pk, ms);
  return buildSecureBootVarStore({
    template: resolved,
    secureBoot: c.firmware.secureBoot,
    ...(base ? { base } : {}),
  });
}

/**
 * Writes the VM's NVRAM from its template: a fresh store at creation, or the existing store with
 * PK/KEK/db/dbx and SecureBootEnable replaced on `vm firmware set` (boot entries are kept).
 */
export async function provisionNvram(
  stateDir: string,
  c: VmConfig,
  p: VmPaths,
  opts: { fresh?: boolean } = {},
): Promise<void> {
  const base = opts.fresh ? undefined : await readFile(p.nvram).catch(() => undefined);
  await writeFileAtomic(p.nvram, await buildNvram(stateDir, c, base ? new Uint8Array(base) : undefined));
}

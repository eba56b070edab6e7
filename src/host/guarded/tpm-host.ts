/**
 * TPM mode on the guarded host: the EK and an AK, both primaries of the endorsement hierarchy
 * (deterministic: the same TPM recreates the same keys, so the AK is enrolled with HGS once; an
 * endorsement-hierarchy AK also keeps `restartCount` un-obfuscated in quotes, which HGS's
 * FullBoot policy reads). The baseline capture reads sha256 PCRs for `bulwark hgs baseline add`.
 */
import { readFile } from "node:fs/promises";
import os from "node:os";
import { makeBaseline, type Baseline, type BaselineKind } from "../../attest/baseline.js";
import { ekHostId, tpm2bPublicBytes } from "../../attest/tpm-wire.js";
import { TPM_ALG } from "../../tpm/alg.js";
import { Tpm, type KeyRef } from "../../tpm/client.js";
import { TPM_RH } from "../../tpm/constants.js";
import { pcrSelection } from "../../tpm/pcr.js";
import { akTemplateEccP256, ekTemplateEccP256 } from "../../tpm/templates.js";
import { parseTarget } from "../../tpm/transport/target.js";
import { hostGuardError, isHostGuardError, type HostGuardError } from "./errors.js";

export interface TpmSession {
  readonly tpm: Tpm;
  readonly ek: KeyRef;
  readonly ak: KeyRef;
  readonly hostId: string;
  close(): Promise<void>;
}

function tpmError(what: string, e: unknown): HostGuardError {
  const msg = e instanceof Error ? e.message : String(e);
  return hostGuardError("HOSTGUARD_ERR_TPM", `${what}: ${msg}`, {}, { cause: e });
}

/** Opens the TPM and creates the EK and AK (flushed again by close()). */
export async function openTpmHost(target: string): Promise<TpmSession> {
  let tpm: Tpm;
  try {
    tpm = new Tpm(parseTarget(target).transport);
  } catch (e) {
    throw tpmError(`TPM target '${target}'`, e);
  }
  const flush: number[] = [];
  const close = async () => {
    for (const h of flush) await tpm.flushContext(h).catch(() => undefined);
    await tpm.close().catch(() => undefined);
  };
  try {
    const ek = await tpm.createPrimary(TPM_RH.ENDORSEMENT, ekTemplateEccP256());
    flush.push(ek.handle);
    const ak = await tpm.createPrimary(TPM_RH.ENDORSEMENT, akTemplateEccP256());
    flush.push(ak.handle);
    return { tpm, ek, ak, hostId: ekHostId(ek.public), close };
  } catch (e) {
    await close();
    throw tpmError(`cannot create the EK and AK in TPM '${target}'`, e);
  }
}

/** The EK public (TPM2B_PUBLIC) for `bulwark hgs host add-tpm --ek-public FILE`. */
export async function exportEkPublic(target: string): Promise<{ ekPublic: Buffer; hostId: string }> {
  const s = await openTpmHost(target);
  try {
    return { ekPublic: tpm2bPublicBytes(s.ek.public), hostId: s.hostId };
  } finally {
    await s.close();
  }
}

export async function readEventLog(file: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(file));
  } catch (e) {
    throw tpmError(`cannot read the event log '${file}'`, e);
  }
}

/**
 * Captures a baseline of `kind` (secureboot: PCR 7; codeintegrity: PCRs 4, 8, 9) from the TPM's
 * sha256 bank, in the `bulwark-hgs-baseline/v1` format `bulwark hgs baseline add` reads.
 */
export async function captureBaseline(target: string, kind: BaselineKind, name: string): Promise<Baseline> {
  let tpm: Tpm;
  try {
    tpm = new Tpm(parseTarget(target).transport);
  } catch (e) {
    throw tpmError(`TPM target '${target}'`, e);
  }
  try {
    const { values } = await tpm.pcrRead([pcrSelection(TPM_ALG.SHA256, [4, 7, 8, 9])]);
    const bank = values.get(TPM_ALG.SHA256) ?? new Map<number, Uint8Array>();
    return makeBaseline(kind, name, bank, { host: os.hostname() });
  } catch (e) {
    if (isHostGuardError(e)) throw e;
    throw tpmError(`cannot read PCRs from TPM '${target}'`, e);
  } finally {
    await tpm.close().catch(() => undefined);
  }
}

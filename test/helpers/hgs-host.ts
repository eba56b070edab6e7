/**
 * A simulated guarded host for HGS tests: a real swtpm (started and killed here), an EK and an
 * AK created in it by the tpm library's client, and a "boot": the real event log of our guest's
 * boot (hgs-boot.ts), or a variant of it edited as a changed boot would have been measured, whose
 * events are extended into the swtpm's sha256 PCRs in order. So the quote, the PCRs and the log
 * are genuinely consistent, and tests can change one of them to attack HGS.
 */
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { TPM_ALG } from "../../src/tpm/alg.js";
import { Tpm, type KeyRef } from "../../src/tpm/client.js";
import { TPM_RH } from "../../src/tpm/constants.js";
import { akTemplateEccP256, ekTemplateEccP256, ekTemplateRsa2048 } from "../../src/tpm/templates.js";
import { SwtpmControl, SwtpmTransport } from "../../src/tpm/transport/swtpm.js";
import { tpm2bPublicBytes, ekHostId } from "../../src/attest/tpm-wire.js";
import { makeBaseline, type Baseline } from "../../src/attest/baseline.js";
import { pcrSelection } from "../../src/tpm/pcr.js";
import { bootEvents, encodeLog, extendBoot, type BootConfig, type BootEvent } from "./hgs-boot.js";
import { spawnTcpSwtpm } from "./tpm-swtpm.js";

export {
  bootEvents,
  encodeLog,
  realKernelArgs,
  withGrubText,
  type BootConfig,
  type BootEvent,
} from "./hgs-boot.js";

export interface SimHost {
  readonly tpm: Tpm;
  readonly control: SwtpmControl;
  readonly ek: KeyRef;
  readonly ak: KeyRef;
  readonly hostId: string;
  readonly ekPublic: Buffer;
  readonly events: BootEvent[];
  eventLog(events?: readonly BootEvent[]): Uint8Array;
  stop(): Promise<void>;
}

export interface Manufactured {
  /** TPM state written by swtpm_setup (copy it; do not run swtpm on it directly). */
  readonly stateDir: string;
  /** EK certificates (DER) written by swtpm_setup --write-ek-cert-files. */
  readonly ekCertRsa: Buffer;
  readonly ekCertEcc: Buffer;
  /** swtpm_localca's issuing certificate (PEM) and its root (PEM). */
  readonly issuerPem: string;
  readonly rootPem: string;
  remove(): void;
}

/**
 * Manufactures a TPM like a vendor would: swtpm_setup creates the EKs and has swtpm_localca (a
 * throw-away local CA in a temp dir) issue their certificates. Nothing outside the temp dir.
 */
export function manufactureTpm(): Manufactured {
  for (const t of ["swtpm_setup", "swtpm_localca"]) {
    if (spawnSync("sh", ["-c", `command -v ${t}`]).status !== 0) {
      throw new Error(`${t} not found: apt-get install swtpm-tools`);
    }
  }
  const root = mkdtempSync(path.join(os.tmpdir(), "bulwark-hgs-mfg-"));
  const ca = path.join(root, "ca");
  const state = path.join(root, "state");
  const certs = path.join(root, "certs");
  for (const d of [ca, state, certs]) mkdirSync(d);
  writeFileSync(
    path.join(ca, "localca.conf"),
    `statedir = ${ca}\nsigningkey = ${ca}/signkey.pem\nissuercert = ${ca}/issuercert.pem\ncertserial = ${ca}/certserial\n`,
  );
  writeFileSync(
    path.join(ca, "localca.options"),
    "--platform-manufacturer Bulwark\n--platform-version 2.1\n--platform-model QEMU\n",
  );
  writeFileSync(
    path.join(root, "setup.conf"),
    `create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = ${ca}/localca.conf\ncreate_certs_tool_options = ${ca}/localca.options\nactive_pcr_banks = sha256\n`,
  );
  const r = spawnSync(
    "swtpm_setup",
    [
      "--tpm2",
      "--tpm-state",
      state,
      "--create-ek-cert",
      "--config",
      path.join(root, "setup.conf"),
      "--write-ek-cert-files",
      certs,
      "--overwrite",
    ],
    { encoding: "utf8", timeout: 60_000 },
  );
  if (r.status !== 0) {
    rmSync(root, { recursive: true, force: true });
    throw new Error(`swtpm_setup failed: ${r.stderr}${r.stdout}`);
  }
  return {
    stateDir: state,
    ekCertRsa: readFileSync(path.join(certs, "ek-rsa2048.crt")),
    ekCertEcc: readFileSync(path.join(certs, "ek-secp384r1.crt")),
    issuerPem: readFileSync(path.join(ca, "issuercert.pem"), "utf8"),
    rootPem: readFileSync(path.join(ca, "swtpm-localca-rootca-cert.pem"), "utf8"),
    remove: () => rmSync(root, { recursive: true, force: true }),
  };
}

export interface SimHostOptions {
  /** Copy this TPM state (e.g. {@link manufactureTpm}'s) instead of starting blank. */
  readonly stateFrom?: string;
  /** EK template (default ECC P-256; `rsa` matches swtpm_setup's RSA-2048 EK certificate). */
  readonly ek?: "ecc" | "rsa";
}

export interface BootedSwtpm {
  readonly tpm: Tpm;
  readonly port: number;
  readonly ctrlPort: number;
  readonly stateDir: string;
  readonly events: BootEvent[];
  /** Closes the connection, stops swtpm, removes its state. */
  stop(): Promise<void>;
}

/**
 * A swtpm on loopback TCP in a fresh state directory (a copy of `stateFrom` if given), started up
 * and "booted": the events of `boot` (hgs-boot.ts) extended into its PCRs.
 */
export async function startBootedSwtpm(boot: BootConfig = {}, stateFrom?: string): Promise<BootedSwtpm> {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), "bulwark-hgs-swtpm-"));
  if (stateFrom) cpSync(stateFrom, stateDir, { recursive: true });
  const proc = await spawnTcpSwtpm(["--tpmstate", `dir=${stateDir}`, "--flags", "not-need-init"]).catch(
    (e: unknown) => {
      rmSync(stateDir, { recursive: true, force: true });
      throw e;
    },
  );
  const tpm = new Tpm(new SwtpmTransport({ host: "127.0.0.1", port: proc.port }));
  const stop = async () => {
    await tpm.close().catch(() => undefined);
    await proc.kill();
    rmSync(stateDir, { recursive: true, force: true });
  };
  try {
    await tpm.startup();
    const events = bootEvents(boot);
    await extendBoot(tpm, events);
    return { tpm, port: proc.port, ctrlPort: proc.ctrlPort, stateDir, events, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Starts swtpm, boots it (extends the PCRs), makes EK and AK. Call `stop()` in teardown. */
export async function startSimHost(boot: BootConfig = {}, opts: SimHostOptions = {}): Promise<SimHost> {
  const b = await startBootedSwtpm(boot, opts.stateFrom);
  try {
    const ek = await b.tpm.createPrimary(
      TPM_RH.ENDORSEMENT,
      opts.ek === "rsa" ? ekTemplateRsa2048() : ekTemplateEccP256(),
    );
    // In the endorsement hierarchy: quotes by owner-hierarchy keys obfuscate resetCount/restartCount
    // (TPM 2.0 Part 3, 18.1), and Hgs_FullBoot reads restartCount.
    const ak = await b.tpm.createPrimary(TPM_RH.ENDORSEMENT, akTemplateEccP256());
    return {
      tpm: b.tpm,
      control: new SwtpmControl({ host: "127.0.0.1", port: b.ctrlPort }),
      ek,
      ak,
      hostId: ekHostId(ek.public),
      ekPublic: tpm2bPublicBytes(ek.public),
      events: b.events,
      eventLog: (e = b.events) => encodeLog(e),
      stop: b.stop,
    };
  } catch (e) {
    await b.stop();
    throw e;
  }
}

/** The baselines a known-good host would capture (PCR 7; PCRs 4, 8, 9), read from its TPM. */
export async function captureBaselines(
  h: SimHost,
  name = "known-good",
): Promise<{ secureboot: Baseline; codeintegrity: Baseline }> {
  const { values } = await h.tpm.pcrRead([pcrSelection(TPM_ALG.SHA256, [4, 7, 8, 9])]);
  const bank = values.get(TPM_ALG.SHA256) ?? new Map<number, Uint8Array>();
  return {
    secureboot: makeBaseline("secureboot", `${name} secure boot`, bank, { host: "sim" }),
    codeintegrity: makeBaseline("codeintegrity", `${name} boot chain`, bank, { host: "sim" }),
  };
}

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { bootGuest } from "../lab/boot.js";
import { scriptFwCfgName } from "../lab/guest-init.js";
import { serialFilter } from "./serial-filter.js";
import { newVmConfig } from "../host/vm/config.js";
import { checkQmpCommand } from "../host/vm/qmp-gate.js";
import { hostContext } from "../host/index.js";
import { saveVm } from "../host/vm/saved-state.js";
import { createVm, startVm, turnOffVm, vmStatus } from "../host/vm/lifecycle.js";
import { setKeyProtector, setSecurityPolicy } from "../host/vm/settings.js";
import { isBulwarkError } from "../core/errors.js";
import { findSecureBootFirmware } from "../host/firmware.js";
import { ensureGuestImage } from "../lab/guest-image.js";
import { parse, printJson } from "./args.js";
import { fabricDemo } from "./demo-fabric.js";
import { interruptSignal } from "./signals.js";

const help = `Usage: bulwark demo [--part boot|shielded|fabric|all] [--quiet] [--json] [--timeout SECONDS]

Part 1 (boot): boots the guest test image with OVMF's Secure Boot firmware (SMM on), a copy of
Debian's OVMF_VARS_4M.ms.fd as NVRAM (Microsoft keys enrolled) and a fresh vTPM (swtpm), streams
the serial console, and summarizes: booted, Secure Boot on, TPM present, event-log size, seconds.
Part 2 (shielded): in a temporary state directory, creates a VM with the
MicrosoftUEFICertificateAuthority template, a local key protector and a vTPM, shields it, starts
it, saves it encrypted, restores it, shows its security settings and that memory-reading QMP
commands are refused, then turns it off.
Part 3 (fabric): a local guarded fabric. A Host Guardian Service (SQLite, HTTPS on 127.0.0.1,
host-key attestation), a guarded host and a shielded VM whose key protector names only the HGS
guardian. The VM is refused while the host is unregistered (UnauthorizedHost), then starts with
keys released by HGS (its transport key rolled); \`bulwark host status\` is shown.
--part all (the default) runs the three parts in order and stops at the first that fails.
Every process is stopped and every temporary directory removed on success, failure and Ctrl-C.
--json prints one JSON object { ok, boot, shielded, fabric } at the end instead of the summaries.`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    { quiet: { type: "boolean" }, timeout: { type: "string" }, part: { type: "string" } },
    false,
  );
  if (values.help) {
    process.stdout.write(`${help}\n`);
    return 0;
  }
  const part = values.part ?? "all";
  if (!["boot", "shielded", "fabric", "all"].includes(part)) {
    process.stderr.write("bulwark demo: --part takes boot, shielded, fabric or all\n");
    return 2;
  }
  const results: Record<string, unknown> = {};
  let ok = true;
  if (part === "boot" || part === "all") {
    const r = await bootPart(values);
    results["boot"] = r.summary;
    ok &&= r.ok;
  }
  if (ok && (part === "shielded" || part === "all")) {
    const r = await shieldedPart(values);
    results["shielded"] = r.summary;
    ok &&= r.ok;
  }
  if (ok && (part === "fabric" || part === "all")) {
    const r = await fabricPart(values);
    results["fabric"] = r.summary;
    ok &&= r.ok;
  }
  if (values.json) printJson({ ok, ...results });
  return ok ? 0 : 1;
}

interface DemoValues {
  quiet?: boolean | undefined;
  json?: boolean | undefined;
  timeout?: string | undefined;
}

async function bootPart(values: DemoValues): Promise<{ ok: boolean; summary: unknown }> {
  const stream = !values.quiet && !values.json;
  const say = (m: string) => {
    if (!values.json) process.stderr.write(`demo: ${m}\n`);
  };
  const fw = findSecureBootFirmware();
  say(`firmware ${fw.code}, NVRAM template ${fw.msVars ?? "(none)"}`);
  const image = await ensureGuestImage("base", { progress: say });
  say(`guest image ${image.disk}`);
  const { signal, dispose } = interruptSignal();
  try {
    say("booting shim → grub → kernel under Secure Boot with a vTPM …");
    const report = await bootGuest({
      disk: image.disk,
      tpm: true,
      signal,
      timeoutMs: Number(values.timeout ?? 300) * 1000,
      ...(stream ? { onSerial: serialFilter((t) => process.stdout.write(t)) } : {}),
    });
    const summary = {
      booted: report.ready,
      secureBoot: report.secureBoot,
      lockdown: report.lockdown,
      tpmPresent: report.tpmPresent,
      eventLogBytes: report.eventLog?.length ?? 0,
      secondsToReady: report.secondsToReady,
      seconds: report.seconds,
      accelerator: report.accelerator,
      outcome: report.outcome,
    };
    const ok =
      report.ready && report.secureBoot === true && report.tpmPresent === true && summary.eventLogBytes > 0;
    if (!values.json) {
      process.stdout.write(
        [
          "",
          "── Bulwark demo summary ──",
          `booted:          ${report.ready ? "yes" : "NO"} (${report.outcome}${report.refusal ? `: ${report.refusal}` : ""})`,
          `Secure Boot:     ${report.secureBoot === true ? "on" : report.secureBoot === false ? "off" : "unknown"}`,
          `kernel lockdown: ${report.lockdown ?? "unknown"}`,
          `TPM present:     ${report.tpmPresent ? "yes" : "no"}`,
          `event log:       ${summary.eventLogBytes} bytes`,
          `time:            ${report.secondsToReady?.toFixed(1) ?? "-"} s to ready marker, ${report.seconds.toFixed(1)} s total (${report.accelerator})`,
          "",
        ].join("\n"),
      );
    }
    return { ok, summary };
  } finally {
    dispose();
  }
}

/** Part 2: a locally shielded VM, saved encrypted and restored. */
async function shieldedPart(values: DemoValues): Promise<{ ok: boolean; summary: unknown }> {
  const say = (m: string) => {
    if (!values.json) process.stderr.write(`demo: ${m}\n`);
  };
  const dir = await mkdtemp(path.join(os.tmpdir(), "bulwark-demo-"));
  const ctx = hostContext(dir, (m) => say(`  ${m}`));
  const name = "shielded-demo";
  const { signal, dispose } = interruptSignal();
  const t0 = Date.now();
  const step = async <T>(label: string, fn: () => Promise<T>): Promise<T> => {
    if (signal.aborted) throw new Error("interrupted");
    say(label);
    return fn();
  };
  try {
    const image = await ensureGuestImage("tpm2tools", { progress: say });
    const script = path.join(dir, "guest-script.sh");
    // The test guest keeps running (and its vTPM busy) until it is turned off.
    await writeFile(script, "while true; do tpm2_pcrread sha256:7 >/dev/null 2>&1; sleep 2; done\n");
    const base = newVmConfig({
      name,
      disks: [{ path: image.disk, format: "raw", snapshot: true }],
      network: "none",
      template: "MicrosoftUEFICertificateAuthority",
    });
    await step(`creating VM '${name}' (template MicrosoftUEFICertificateAuthority) in ${dir}`, () =>
      createVm(ctx, { ...base, fwCfg: { [scriptFwCfgName]: script } }),
    );
    const { keyProtector: kp } = await step(
      "creating a local key protector (owner and guardian: UntrustedGuardian)",
      () => setKeyProtector(ctx, name, { kind: "new-local" }),
    );
    await step("shielding: Secure Boot, vTPM and state encryption forced and locked; console removed", () =>
      setSecurityPolicy(ctx, name, { shielded: true }),
    );
    const tStart = Date.now();
    await step("starting the shielded VM (vTPM state key released by the key protector)", () =>
      startVm(ctx, name),
    );
    const startSeconds = (Date.now() - tStart) / 1000;
    await step("letting the guest boot (a shielded VM has no console: the host cannot look inside)", () =>
      sleep(20_000, undefined, { signal }),
    );
    const running = await vmStatus(ctx, name);
    let refused = "";
    try {
      checkQmpCommand(await ctx.store.load(name), "dump-guest-memory");
    } catch (e) {
      if (isBulwarkError(e)) refused = `${e.code}: ${e.message}`;
    }
    const tSave = Date.now();
    const meta = await step("saving the VM (QEMU migration stream → AES-256-GCM chunks → file)", () =>
      saveVm(ctx, name, {}),
    );
    const saveSeconds = (Date.now() - tSave) / 1000;
    const saved = await vmStatus(ctx, name);
    const tRestore = Date.now();
    await step("restoring the VM from its encrypted saved state", () => startVm(ctx, name));
    const restoreSeconds = (Date.now() - tRestore) / 1000;
    const restored = await vmStatus(ctx, name);
    const c = await ctx.store.load(name);
    const summary = {
      vm: name,
      template: c.firmware.template,
      secureBoot: c.firmware.secureBoot,
      tpm: c.tpm.enabled,
      encryptStateAndMigration: c.security.encryptStateAndMigration,
      policy: c.security.policy,
      console: c.console,
      keyProtector: { owner: kp.owner.name, guardians: kp.guardians.map((g) => g.name) },
      stateAfterStart: running.state,
      savedState: { bytes: meta.bytes, encrypted: meta.encrypted, stateAfterSave: saved.state },
      stateAfterRestore: restored.state,
      dumpGuestMemory: refused ? "refused" : "ALLOWED",
      seconds: {
        start: startSeconds,
        save: saveSeconds,
        restore: restoreSeconds,
        total: (Date.now() - t0) / 1000,
      },
    };
    const ok =
      running.state === "Running" &&
      saved.state === "Saved" &&
      meta.encrypted &&
      restored.state === "Running" &&
      refused !== "";
    if (!values.json) {
      process.stdout.write(
        [
          "",
          "── Shielded VM (local mode, no HGS) ──",
          `VM:                        ${name} (${c.security.policy})`,
          `Secure Boot:               ${c.firmware.secureBoot ? "On" : "Off"}  (locked by shielding), template ${c.firmware.template}`,
          `Trusted Platform Module:   ${c.tpm.enabled ? "On" : "Off"}  (locked by shielding; swtpm state encrypted under a key from the key protector)`,
          `Encrypt state & migration: ${c.security.encryptStateAndMigration ? "On" : "Off"}  (locked by shielding)`,
          `Console / guest agent:     none / none`,
          `Key protector:             owner ${kp.owner.name}, guardians ${kp.guardians.map((g) => g.name).join(", ")}`,
          `Started:                   ${running.state} in ${startSeconds.toFixed(1)} s`,
          `Saved:                     ${meta.bytes} bytes, ${meta.encrypted ? "encrypted (AES-256-GCM chunks)" : "PLAIN"} in ${saveSeconds.toFixed(1)} s → ${saved.state}`,
          `Restored:                  ${restored.state} in ${restoreSeconds.toFixed(1)} s`,
          `dump-guest-memory:         ${refused ? `refused (${refused.split(":")[0]})` : "ALLOWED"}`,
          "",
        ].join("\n"),
      );
    }
    return { ok, summary };
  } finally {
    await turnOffVm(ctx, name).catch(() => undefined);
    dispose();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Part 3: HGS + guarded host + a shielded VM whose keys only HGS releases (demo-fabric.ts). */
async function fabricPart(values: DemoValues): Promise<{ ok: boolean; summary: unknown }> {
  const { signal, dispose } = interruptSignal();
  try {
    return await fabricDemo({
      json: values.json === true,
      signal,
      say: (m) => {
        if (!values.json) process.stderr.write(`demo: ${m}\n`);
      },
    });
  } finally {
    dispose();
  }
}

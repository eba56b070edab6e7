import { bootGuest } from "../host/boot.js";
import { findSecureBootFirmware } from "../host/firmware.js";
import { ensureGuestImage } from "../host/guest-image.js";
import { parse, printJson } from "./args.js";
import { interruptSignal } from "./signals.js";

const help = `Usage: bulwark demo [--quiet] [--json] [--timeout SECONDS]

Boots the guest test image with OVMF's Secure Boot firmware (SMM on), a copy of Debian's
OVMF_VARS_4M.ms.fd as NVRAM (Microsoft keys enrolled) and a fresh vTPM (swtpm), streams the
serial console, and ends with a summary: booted, Secure Boot on, TPM present, event-log size,
seconds taken. Every child process is stopped on success, failure and Ctrl-C.`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, { quiet: { type: "boolean" }, timeout: { type: "string" } }, false);
  if (values.help) {
    process.stdout.write(`${help}\n`);
    return 0;
  }
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
      ...(stream ? { onSerial: (t: string) => process.stdout.write(t) } : {}),
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
    if (values.json) printJson({ ok, ...summary });
    else {
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
    return ok ? 0 : 1;
  } finally {
    dispose();
  }
}

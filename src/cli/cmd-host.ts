/**
 * `bulwark host …`: this host as a guarded host (Hyper-V's `Set-/Get-HgsClientConfiguration`):
 * the HGS client configuration, the host's identity keys, attestation and its status, and TPM
 * baseline capture for `bulwark hgs baseline add`.
 */
import { readFile } from "node:fs/promises";
import { isBulwarkError } from "../core/errors.js";
import { writeFileAtomic } from "../io/atomic.js";
import {
  attestNow,
  clearRecord,
  hostGuardStatus,
  openClient,
  type HostGuardStatus,
} from "../host/guarded/attestation.js";
import {
  DEFAULT_RENEW_FRACTION,
  DEFAULT_TIMEOUT_MS,
  LOCAL_CONFIG,
  readConfig,
  writeConfig,
  type HgsClientConfig,
} from "../host/guarded/config.js";
import { hostGuardError } from "../host/guarded/errors.js";
import { HOST_KEY_TYPES, hostKeyPublic, keyReleaseKey, type HostKeyType } from "../host/guarded/identity.js";
import { captureBaseline, exportEkPublic } from "../host/guarded/tpm-host.js";
import { parse, printJson, usageError } from "./args.js";
import { stateDirOption } from "./state-dir.js";

const help = `Usage: bulwark host <verb> [--state-dir DIR] [--json]

  config                                   show the HGS client configuration
  config --hgs URL [--fallback URL]... [--ca FILE] [--mode key|tpm]
         [--tpm device:/dev/tpmrm0|swtpm:host=H,port=P] [--event-log FILE]
         [--renew-fraction F] [--timeout-ms N] [--host-key-type p256|rsa-3072]
                                           guard this host with a Host Guardian Service
  config --local-mode                      back to local mode (local guardians only)
  key export [--out FILE]                  the host key's public half (PEM) and host id, for
                                           \`bulwark hgs host add-key --public-key FILE\`
  ek export --out FILE [--tpm TARGET]      TPM mode: the EK public (TPM2B_PUBLIC), for
                                           \`bulwark hgs host add-tpm --ek-public FILE\`
  attest                                   attest now; caches the health certificate (0600)
  status                                   Mode, URLs, AttestationStatus and substatus,
                                           health certificate validity (no network)
  baseline capture --kind secureboot|codeintegrity --name NAME [--tpm TARGET] --out FILE
                                           a TPM baseline for \`bulwark hgs baseline add FILE\`

Identity keys (host key, key-release key) are created on first need, 0600 under <state>/host/.
Shielded VMs whose key protector names this host's HGS get their keys from HGS at every start;
the health certificate is renewed at the next use once less than --renew-fraction
(default ${DEFAULT_RENEW_FRACTION}) of its lifetime remains.`;

function yes(b: boolean): string {
  return b ? "True" : "False";
}

export function formatStatus(s: HostGuardStatus): string {
  const rows: [string, string][] = [
    ["IsHostGuarded", yes(s.IsHostGuarded)],
    ["Mode", s.Mode],
    ["KeyProtectionServerUrl", s.KeyProtectionServerUrl ?? ""],
    ["AttestationServerUrl", s.AttestationServerUrl ?? ""],
    ["FallbackKeyProtectionServerUrl", s.FallbackKeyProtectionServerUrl.join(", ")],
    ["FallbackAttestationServerUrl", s.FallbackAttestationServerUrl.join(", ")],
    ["AttestationOperationMode", s.AttestationOperationMode ?? ""],
    ["AttestationStatus", s.AttestationStatus],
    ["AttestationSubstatus", s.AttestationSubstatus.join(", ")],
    ["HostId", s.HostId ?? ""],
    [
      "HealthCertificate",
      s.HealthCertificate
        ? `${s.HealthCertificate.valid ? "valid" : "NOT valid"} ${s.HealthCertificate.validFrom} .. ${s.HealthCertificate.validUntil} (renew after ${s.HealthCertificate.renewAfter})`
        : "",
    ],
  ];
  if (s.LastAttestation) {
    rows.push([
      "LastAttestation",
      `${s.LastAttestation.at} ${s.LastAttestation.status}${s.LastAttestation.url ? ` via ${s.LastAttestation.url}` : ""}`,
    ]);
    for (const f of s.LastAttestation.findings) rows.push(["  Finding", `${f.id}: ${f.message}`]);
    if (s.LastAttestation.error && s.LastAttestation.status === "TransientError")
      rows.push(["  Error", s.LastAttestation.error.message]);
  }
  return rows.map(([k, v]) => `${k.padEnd(31)}: ${v}`).join("\n");
}

function num(v: string | undefined, what: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw usageError(`${what} takes a number`);
  return n;
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    "state-dir": { type: "string" },
    hgs: { type: "string" },
    fallback: { type: "string", multiple: true },
    ca: { type: "string" },
    mode: { type: "string" },
    tpm: { type: "string" },
    "event-log": { type: "string" },
    "renew-fraction": { type: "string" },
    "timeout-ms": { type: "string" },
    "host-key-type": { type: "string" },
    "local-mode": { type: "boolean" },
    out: { type: "string" },
    kind: { type: "string" },
    name: { type: "string" },
  });
  const [verb, sub] = positionals;
  if (values.help || !verb) {
    process.stdout.write(`${help}\n`);
    return values.help ? 0 : 2;
  }
  const json = values.json === true;
  const stateDir = stateDirOption(values["state-dir"]);
  const show = (c: HgsClientConfig) => {
    const { caPem, ...rest } = c;
    const shown = { ...rest, ca: caPem ? "(PEM certificate)" : null };
    if (json) printJson(shown);
    else
      process.stdout.write(
        `${Object.entries(shown)
          .map(([k, v]) => `${k.padEnd(16)}: ${Array.isArray(v) ? v.join(", ") : String(v)}`)
          .join("\n")}\n`,
      );
  };

  switch (verb) {
    case "config": {
      if (values["local-mode"]) {
        if (values.hgs) throw usageError("--local-mode and --hgs exclude each other");
        show(await writeConfig(stateDir, LOCAL_CONFIG));
        await clearRecord(stateDir);
        return 0;
      }
      if (!values.hgs) {
        show(await readConfig(stateDir));
        return 0;
      }
      const mode = values.mode ?? "key";
      if (mode !== "key" && mode !== "tpm") throw usageError("--mode is key or tpm");
      const keyType = values["host-key-type"];
      if (keyType !== undefined && !HOST_KEY_TYPES.includes(keyType as HostKeyType))
        throw usageError(`--host-key-type is one of ${HOST_KEY_TYPES.join(", ")}`);
      const prev = await readConfig(stateDir);
      const c = await writeConfig(stateDir, {
        version: 1,
        mode: "HostGuardianService",
        hgsUrl: values.hgs,
        fallbackUrls: values.fallback ?? [],
        ...(values.ca ? { caPem: await readFile(values.ca, "utf8") } : {}),
        attestationMode: mode,
        ...(values.tpm ? { tpm: values.tpm } : {}),
        ...(values["event-log"] ? { eventLog: values["event-log"] } : {}),
        renewFraction:
          num(values["renew-fraction"], "--renew-fraction") ?? prev.renewFraction ?? DEFAULT_RENEW_FRACTION,
        timeoutMs: num(values["timeout-ms"], "--timeout-ms") ?? prev.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      });
      // Identity on first need: the key-release key always, the host key in key mode.
      await keyReleaseKey(stateDir);
      if (mode === "key") await hostKeyPublic(stateDir, keyType as HostKeyType | undefined);
      await clearRecord(stateDir);
      show(c);
      return 0;
    }
    case "key": {
      if (sub !== "export") throw usageError("host key export [--out FILE]");
      const k = await hostKeyPublic(stateDir, values["host-key-type"] as HostKeyType | undefined);
      if (values.out) await writeFileAtomic(values.out, k.pem, 0o644);
      if (json) printJson({ hostId: k.hostId, publicKey: k.pem, ...(values.out ? { out: values.out } : {}) });
      else if (values.out) process.stdout.write(`host key ${k.hostId} written to ${values.out}\n`);
      else process.stdout.write(k.pem);
      return 0;
    }
    case "ek": {
      if (sub !== "export" || !values.out) throw usageError("host ek export --out FILE [--tpm TARGET]");
      const target = values.tpm ?? (await readConfig(stateDir)).tpm;
      if (!target) throw usageError("--tpm TARGET is needed (or configure one with host config --tpm)");
      const ek = await exportEkPublic(target);
      await writeFileAtomic(values.out, ek.ekPublic, 0o644);
      if (json) printJson({ hostId: ek.hostId, out: values.out });
      else process.stdout.write(`EK public of host ${ek.hostId} written to ${values.out}\n`);
      return 0;
    }
    case "attest": {
      const c = await readConfig(stateDir);
      if (c.mode === "Local")
        throw hostGuardError(
          "HOSTGUARD_ERR_LOCAL_MODE",
          "the host is in local mode (bulwark host config --hgs URL)",
        );
      const client = openClient(c);
      let failure: unknown;
      try {
        await attestNow(stateDir, c, client);
      } catch (e) {
        failure = e;
      } finally {
        client.close();
      }
      const s = await hostGuardStatus(stateDir);
      if (failure === undefined) {
        if (json) printJson(s);
        else process.stdout.write(`${formatStatus(s)}\n`);
        return 0;
      }
      if (!isBulwarkError(failure)) throw failure;
      const { specFor } = await import("../catalogue.js");
      if (json) printJson({ ...s, error: failure.toJSON() });
      else {
        process.stdout.write(`${formatStatus(s)}\n`);
        process.stderr.write(`bulwark: ${failure.code}: ${failure.message}\n`);
      }
      return specFor(failure.code)?.exit ?? 1;
    }
    case "status": {
      const s = await hostGuardStatus(stateDir);
      if (json) printJson(s);
      else process.stdout.write(`${formatStatus(s)}\n`);
      return 0;
    }
    case "baseline": {
      if (sub !== "capture") throw usageError("host baseline capture --kind K --name N [--tpm T] --out FILE");
      const kind = values.kind;
      if (kind !== "secureboot" && kind !== "codeintegrity")
        throw usageError("--kind is secureboot or codeintegrity");
      if (!values.out || !values.name) throw usageError("baseline capture needs --name NAME and --out FILE");
      const target = values.tpm ?? (await readConfig(stateDir)).tpm ?? "device:/dev/tpmrm0";
      const b = await captureBaseline(target, kind, values.name);
      await writeFileAtomic(values.out, `${JSON.stringify(b, null, 2)}\n`, 0o644);
      if (json) printJson(b);
      else
        process.stdout.write(
          `captured ${kind} baseline '${values.name}' (PCRs ${Object.keys(b.pcrs).join(", ")}) to ${values.out}\n`,
        );
      return 0;
    }
    default:
      throw usageError(`unknown host verb '${verb}'\n\n${help}`);
  }
}

import net from "node:net";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { inspectKeyProtector } from "../protector/key-protector.js";
import { hostContext } from "../host/index.js";
import { isNetworkMode, isShielded, networkModes, newVmConfig, type VmConfig } from "../host/vm/config.js";
import type { VmContext } from "../host/vm/context.js";
import { hasKeyProtector, readKeyProtector } from "../host/vm/keys.js";
import {
  createVm,
  deleteVm,
  operatorQmp,
  pauseVm,
  startVm,
  stopVm,
  turnOffVm,
  vmStatus,
} from "../host/vm/lifecycle.js";
import { rekeyVm } from "../host/vm/rekey.js";
import { saveVm } from "../host/vm/saved-state.js";
import { resetVtpm } from "../host/vm/vtpm-reset.js";
import {
  consoleFor,
  lockedByShielding,
  restoreKeyProtector,
  setFirmware,
  setKeyProtector,
  setSecurity,
  setSecurityPolicy,
  setTpm,
  signSettings,
  type SettingResult,
} from "../host/vm/settings.js";
import { settingsVerdict } from "../host/vm/security-statement.js";
import { parse, printJson, usageError } from "./args.js";
import { stateDirOption } from "./state-dir.js";

const help = `Usage: bulwark vm <verb> [options]        (all verbs: --state-dir DIR, --json)

Lifecycle (Hyper-V: New-VM, Start-VM, Stop-VM, Save-VM, ...):
  new NAME [--disk PATH[:raw|qcow2]]... [--memory MIB] [--cpus N] [--network user|none]
           [--template NAME|ID] [--secure-boot on|off]
  list | show NAME | start NAME | stop NAME [--timeout S] | turn-off NAME
  pause NAME | resume NAME | save NAME | delete NAME [--force] | console NAME
  qmp NAME COMMAND [JSON-ARGS]      one QMP command, through the security policy's gate
Security (Hyper-V's Security page):
  firmware set NAME [--secure-boot on|off] [--template NAME|ID]
  tpm enable NAME | tpm disable NAME
  tpm reset NAME --yes              discard the vTPM (its EK and what the guest sealed); the
                                    next start makes a new one (VM off; recorded in the VM's
                                    history.jsonl). Never implied: a start whose vTPM state is
                                    missing refuses (VM_ERR_VTPM_STATE_MISSING)
  key-protector set NAME (--new-local | --file KP) | key-protector show NAME
  key-protector restore-last-known-good NAME
  key-protector roll NAME           new transport, vTPM-state and saved-state keys (VM off)
  security set NAME --encrypt-state-and-migration on|off
  security-policy set NAME --shielded on|off [--encryption-supported on|off]
  settings sign NAME                sign the current settings and NVRAM keys (owner key needed)

Settings change only while the VM is off. Shielded forces and locks Secure Boot, the vTPM and
state encryption, removes the console, guest agent, shares and debug stub, and lets only status
and power QMP commands through (encryption on: also host-side queries). A VM with a key
protector has its settings signed by its owner: changing them needs the owner guardian's key
here, and a VM whose config.json or nvram.fd differ from what the owner signed does not start.
The state directory defaults to $BULWARK_STATE_DIR or /var/lib/bulwark.`;

const options = {
  "state-dir": { type: "string" },
  disk: { type: "string", multiple: true },
  memory: { type: "string" },
  cpus: { type: "string" },
  network: { type: "string" },
  template: { type: "string" },
  "secure-boot": { type: "string" },
  timeout: { type: "string" },
  force: { type: "boolean" },
  "new-local": { type: "boolean" },
  file: { type: "string" },
  "encrypt-state-and-migration": { type: "string" },
  shielded: { type: "string" },
  "encryption-supported": { type: "string" },
  quiet: { type: "boolean" },
  yes: { type: "boolean" },
} as const;

function onOff(v: string | undefined, flag: string): boolean | undefined {
  if (v === undefined) return undefined;
  if (v === "on" || v === "true") return true;
  if (v === "off" || v === "false") return false;
  throw usageError(`--${flag} takes on or off`);
}

function networkOption(v: string): VmConfig["network"] {
  if (!isNetworkMode(v))
    throw usageError(`--network takes ${networkModes.join(" or ")}, not ${JSON.stringify(v.slice(0, 40))}`);
  return v;
}

function need(v: string | undefined, what: string): string {
  if (!v) throw usageError(`missing ${what}\n\n${help}`);
  return v;
}

async function describe(ctx: VmContext, name: string) {
  const c = await ctx.store.load(name);
  const s = await vmStatus(ctx, name);
  const p = ctx.store.paths(name);
  const kp = (await hasKeyProtector(p)) ? inspectKeyProtector(await readKeyProtector(p)) : null;
  const signed = await settingsVerdict(c, p);
  return {
    name,
    id: c.id,
    state: s.state,
    cpus: c.cpus,
    memoryMiB: c.memoryMiB,
    disks: c.disks,
    network: c.network,
    security: {
      secureBoot: c.firmware.secureBoot,
      template: c.firmware.template,
      tpm: c.tpm.enabled,
      encryptStateAndMigration: c.security.encryptStateAndMigration,
      policy: c.security.policy,
      shielded: isShielded(c),
      lockedByShielding: lockedByShielding(c),
      console: c.console,
      guestAgent: c.guestAgent,
      /** Whether config.json and nvram.fd hold what the owner signed (the start checks the same). */
      signedSettings: signed,
    },
    keyProtector: kp
      ? { owner: kp.owner.name, guardians: kp.guardians.map((g) => g.name), keyGeneration: kp.keyGeneration }
      : null,
    savedState: s.savedState,
  };
}

function printShow(d: Awaited<ReturnType<typeof describe>>): void {
  const yes = (b: boolean) => (b ? "On" : "Off");
  const signed = d.security.signedSettings;
  const trusted = signed.status === "verified" || signed.status === "unprotected";
  // A lock is only claimed for settings the owner's signature still covers.
  const lock = (k: string) =>
    trusted && d.security.lockedByShielding.includes(k) ? "  (locked by shielding)" : "";
  const nvramSb = signed.nvramSecureBoot;
  const secureBoot =
    d.security.secureBoot && nvramSb !== "enabled"
      ? `Off (nvram.fd: ${nvramSb}; config.json says On)`
      : `${yes(d.security.secureBoot)}${lock("secureBoot")}`;
  const signedLine =
    signed.status === "verified"
      ? "verified (config.json and nvram.fd match what the owner signed)"
      : signed.status === "unprotected"
        ? "none (no key protector)"
        : signed.status === "unsigned"
          ? "UNSIGNED: the VM will not start until its owner runs 'bulwark vm settings sign'"
          : `TAMPERED: ${(signed.differences ?? []).join(", ") || (signed.message ?? "")}; the VM will not start`;
  process.stdout.write(
    [
      `Name:                      ${d.name}`,
      `State:                     ${d.state}`,
      `Processors / memory:       ${d.cpus} / ${d.memoryMiB} MiB`,
      `Secure Boot:               ${secureBoot}`,
      `Secure Boot template:      ${d.security.template}`,
      `Trusted Platform Module:   ${yes(d.security.tpm)}${lock("tpm")}`,
      `Encrypt state & migration: ${yes(d.security.encryptStateAndMigration)}${lock("encryptStateAndMigration")}`,
      `Security policy:           ${d.security.policy}`,
      `Console:                   ${d.security.console ? "serial (bulwark vm console)" : "none"}`,
      `Signed settings:           ${signedLine}`,
      `Key protector:             ${d.keyProtector ? `owner ${d.keyProtector.owner}; guardians ${d.keyProtector.guardians.join(", ")}` : "none"}`,
      `Saved state:               ${d.savedState ? `${d.savedState.bytes} bytes, ${d.savedState.encrypted ? "encrypted" : "PLAIN"}` : "none"}`,
      "",
    ].join("\n"),
  );
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, options);
  if (values.help || positionals.length === 0) {
    process.stdout.write(`${help}\n`);
    return values.help ? 0 : 2;
  }
  const json = values.json === true;
  const progress = (m: string) => {
    if (!json && !values.quiet) process.stderr.write(`vm: ${m}\n`);
  };
  const ctx = hostContext(stateDirOption(values["state-dir"]), progress);
  const [verb, a1, a2, a3] = positionals;
  const out = (value: unknown, human: () => void) => {
    if (json) printJson(value);
    else human();
    return 0;
  };
  switch (verb) {
    case "new": {
      const name = need(a1, "VM name");
      const disks = (values.disk ?? []).map((d) => {
        const m = /^(.*?)(?::(raw|qcow2))?$/.exec(d) as RegExpExecArray;
        const file = path.resolve(m[1] as string);
        return {
          path: file,
          format: (m[2] ?? (file.endsWith(".qcow2") ? "qcow2" : "raw")) as "raw" | "qcow2",
        };
      });
      const sb = onOff(values["secure-boot"], "secure-boot");
      const c = newVmConfig({
        name,
        disks,
        ...(values.memory ? { memoryMiB: Number(values.memory) } : {}),
        ...(values.cpus ? { cpus: Number(values.cpus) } : {}),
        ...(values.network === undefined ? {} : { network: networkOption(values.network) }),
        ...(values.template ? { template: values.template } : {}),
        ...(sb === undefined ? {} : { secureBoot: sb }),
      });
      const p = await createVm(ctx, c);
      return out(await describe(ctx, name), () => process.stdout.write(`created VM '${name}' in ${p.dir}\n`));
    }
    case "list": {
      const rows: { name: string; state: string; policy: string; tpm: boolean; secureBoot: boolean }[] = [];
      for (const n of await ctx.store.list()) {
        const c = await ctx.store.load(n);
        const s = await vmStatus(ctx, n);
        rows.push({
          name: n,
          state: s.state,
          policy: c.security.policy,
          tpm: c.tpm.enabled,
          secureBoot: c.firmware.secureBoot,
        });
      }
      return out(rows, () => {
        process.stdout.write(
          `${"NAME".padEnd(20)} ${"STATE".padEnd(8)} ${"POLICY".padEnd(20)} TPM  SECUREBOOT\n`,
        );
        for (const r of rows) {
          process.stdout.write(
            `${r.name.padEnd(20)} ${r.state.padEnd(8)} ${r.policy.padEnd(20)} ${(r.tpm ? "on" : "off").padEnd(4)} ${r.secureBoot ? "on" : "off"}\n`,
          );
        }
      });
    }
    case "show": {
      const d = await describe(ctx, need(a1, "VM name"));
      return out(d, () => printShow(d));
    }
    case "start": {
      const name = need(a1, "VM name");
      const s = await startVm(ctx, name);
      return out(s, () => process.stdout.write(`VM '${name}' is ${s.state}\n`));
    }
    case "stop": {
      const name = need(a1, "VM name");
      const s = await stopVm(ctx, name, { timeoutMs: Number(values.timeout ?? 60) * 1000 });
      return out(s, () => process.stdout.write(`VM '${name}' is ${s.state}\n`));
    }
    case "turn-off": {
      const name = need(a1, "VM name");
      const s = await turnOffVm(ctx, name);
      return out(s, () => process.stdout.write(`VM '${name}' is ${s.state}\n`));
    }
    case "pause":
    case "resume": {
      const name = need(a1, "VM name");
      const s = await pauseVm(ctx, name, verb === "pause");
      return out(s, () => process.stdout.write(`VM '${name}' is ${s.state}\n`));
    }
    case "save": {
      const name = need(a1, "VM name");
      let last = -1;
      const meta = await saveVm(ctx, name, {
        onProgress: (t, total) => {
          const pct = total > 0 ? Math.floor((100 * t) / total) : 0;
          if (!json && !values.quiet && pct !== last && pct % 10 === 0) {
            last = pct;
            process.stderr.write(`vm: save ${pct}% (${(t / 1048576).toFixed(0)} MiB)\n`);
          }
        },
      });
      return out(meta, () =>
        process.stdout.write(
          `saved VM '${name}': ${meta.bytes} bytes, ${meta.encrypted ? "encrypted" : "plain"}\n`,
        ),
      );
    }
    case "delete": {
      const name = need(a1, "VM name");
      await deleteVm(ctx, name, { force: values.force === true });
      return out({ deleted: name }, () => process.stdout.write(`deleted VM '${name}'\n`));
    }
    case "console": {
      const sock = net.createConnection(await consoleFor(ctx, need(a1, "VM name")));
      process.stdin.pipe(sock);
      sock.pipe(process.stdout);
      await new Promise<void>((r) => sock.on("close", () => r()));
      return 0;
    }
    case "qmp": {
      const name = need(a1, "VM name");
      const command = need(a2, "QMP command");
      let args: Record<string, unknown> | undefined;
      if (a3) {
        try {
          args = JSON.parse(a3) as Record<string, unknown>;
        } catch {
          throw usageError("QMP arguments must be a JSON object");
        }
      }
      printJson((await operatorQmp(ctx, name, command, args)) ?? {});
      return 0;
    }
    case "firmware":
    case "tpm":
    case "settings":
    case "key-protector":
    case "security":
    case "security-policy":
      return settings(ctx, verb, a1, a2, values, json);
    default:
      throw usageError(`unknown vm verb '${verb}'\n\n${help}`);
  }
}

type Values = ReturnType<typeof parse<typeof options>>["values"];

async function settings(
  ctx: VmContext,
  group: string,
  sub: string | undefined,
  nameArg: string | undefined,
  values: Values,
  json: boolean,
): Promise<number> {
  const name = need(nameArg, "VM name");
  const done = async (r: SettingResult, msg: (c: SettingResult["config"]) => string) => {
    const d = await describe(ctx, name);
    if (json) printJson(d);
    else process.stdout.write(`${msg(r.config)}\n`);
    return 0;
  };
  switch (`${group} ${sub ?? ""}`) {
    case "key-protector show": {
      await ctx.store.load(name); // VM_ERR_NOT_FOUND before "no key protector"
      const info = inspectKeyProtector(await readKeyProtector(ctx.store.paths(name)));
      if (json) printJson(info);
      else {
        process.stdout.write(
          `owner: ${info.owner.name} (${info.owner.thumbprint})\nguardians:\n${info.guardians.map((g) => `  ${g.name} (${g.thumbprint}) ${g.wrapScheme}`).join("\n")}\n` +
            `key generation ${info.keyGeneration}, guardian-set generation ${info.guardianSetGeneration}, owner signature ${info.ownerSignature.valid ? "valid" : `INVALID (${info.ownerSignature.error})`}\n`,
        );
      }
      return 0;
    }
    case "firmware set": {
      const sb = onOff(values["secure-boot"], "secure-boot");
      const r = await setFirmware(ctx, name, {
        ...(sb === undefined ? {} : { secureBoot: sb }),
        ...(values.template === undefined ? {} : { template: values.template }),
      });
      return done(
        r,
        (c) =>
          `firmware of '${name}': Secure Boot ${c.firmware.secureBoot ? "on" : "off"}, template ${c.firmware.template}`,
      );
    }
    case "tpm reset": {
      const r = await resetVtpm(ctx, name, { confirmed: values.yes === true });
      if (json) printJson(r);
      else {
        process.stdout.write(
          `vTPM of '${name}' reset${r.discardedManufacturedAt ? ` (the vTPM made ${r.discardedManufacturedAt} is gone)` : ""}; the next start makes a new one\n`,
        );
      }
      return 0;
    }
    case "tpm enable":
    case "tpm disable": {
      const enable = sub === "enable";
      const r = await setTpm(ctx, name, enable);
      return done(r, () => `TPM of '${name}' ${enable ? "enabled" : "disabled"}`);
    }
    case "key-protector set": {
      let r: SettingResult;
      if (values["new-local"]) r = await setKeyProtector(ctx, name, { kind: "new-local" });
      else if (values.file) {
        const keyProtector = new Uint8Array(await readFile(values.file));
        r = await setKeyProtector(ctx, name, { kind: "bytes", keyProtector, file: values.file });
      } else throw usageError("key-protector set needs --new-local or --file KP");
      return done(r, () => `key protector of '${name}' set`);
    }
    case "settings sign": {
      const r = await signSettings(ctx, name);
      return done(r, () => `settings of '${name}' signed by its owner`);
    }
    case "key-protector roll": {
      const r = await rekeyVm(ctx, name);
      if (json) printJson(r);
      else {
        process.stdout.write(
          `keys of '${name}' rolled: key generation ${r.keyProtector.keyGeneration}` +
            `${r.vtpmRekeyed ? ", vTPM state re-encrypted under a new key" : ""}, new saved-state key\n`,
        );
      }
      return 0;
    }
    case "key-protector restore-last-known-good": {
      const r = await restoreKeyProtector(ctx, name);
      return done(r, () => `key protector of '${name}' restored from its last known good copy`);
    }
    case "security set": {
      const enc = onOff(values["encrypt-state-and-migration"], "encrypt-state-and-migration");
      if (enc === undefined) throw usageError("security set needs --encrypt-state-and-migration on|off");
      const r = await setSecurity(ctx, name, { encryptStateAndMigration: enc });
      return done(r, () => `state and migration encryption of '${name}' ${enc ? "on" : "off"}`);
    }
    case "security-policy set": {
      const sh = onOff(values.shielded, "shielded");
      const es = onOff(values["encryption-supported"], "encryption-supported");
      if (sh === undefined && es === undefined)
        throw usageError("security-policy set needs --shielded on|off");
      const r = await setSecurityPolicy(ctx, name, {
        ...(sh === undefined ? {} : { shielded: sh }),
        ...(es === undefined ? {} : { encryptionSupported: es }),
      });
      return done(r, (c) => `security policy of '${name}': ${c.security.policy}`);
    }
    default:
      throw usageError(`unknown verb 'vm ${group} ${sub ?? ""}'\n\n${help}`);
  }
}

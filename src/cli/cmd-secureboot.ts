/**
 * `bulwark secureboot`: Secure Boot templates, VM NVRAM files and keys. A thin layer over
 * src/uefi; `sign` and `verify` are dispatched to the Authenticode verbs.
 */
import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { isBulwarkError } from "../core/errors.js";
import { uefiError } from "../uefi/errors.js";
import { Guids } from "../uefi/guid.js";
import {
  createKeyFiles,
  installMicrosoftCertificates,
  loadKey,
  loadCustomTemplates,
  loadMicrosoftSet,
  readInputFile,
  saveCustomTemplate,
  secureBootDir,
  writeOutputFile,
  writeVmNvram,
  type KeyKind,
} from "../host/secureboot-store.js";
import {
  decodeSignatureDatabase,
  encodeSignatureDatabase,
  describeDatabase,
  type EfiSignatureList,
} from "../uefi/siglist.js";
import {
  BUILTIN_TEMPLATES,
  findTemplate,
  makeCustomTemplate,
  resolveTemplate,
  signatureListsFromFile,
  type ImportedVars,
  type Template,
} from "../uefi/templates.js";
import { encodeVarStore, getVariable, parseVarStore } from "../uefi/varstore.js";
import {
  azureDocumentForLists,
  azureDocumentForTemplate,
  parseAzureUefiSettings,
  varsFromAzureUefiSettings,
} from "../uefi/azure-uefi-settings.js";
import { applySignedUpdate, createSignedUpdate, verifySignedUpdate } from "../uefi/auth-variable.js";
import { Attr, SECURE_BOOT_DB_ATTRS, efiTimeFromDate, secureBootVarGuid } from "../uefi/variables.js";
import { entryLine, reportText, reportVarStore } from "../uefi/varstore-report.js";
import { parse, printJson, usageError } from "./args.js";
import { stateDirOption } from "./state-dir.js";

const help = `Usage: bulwark secureboot <verb> [options]

Secure Boot for Generation 2 VMs: templates (Hyper-V's names and IDs), NVRAM files, keys.

  template list                         the built-in and custom templates
  template show NAME|ID                 a template's PK/KEK/db/dbx entries
  template import --name NAME [--id GUID] [--description TEXT]
                  (--uefi-settings FILE | [--pk FILE] [--kek FILE]... [--db FILE]... [--dbx FILE]...)
                                        FILEs: PEM/DER certificates, ESL files, SHA-256 hash lists;
                                        --uefi-settings: Azure's securityProfile.uefiSettings
                                        (signatureTemplateNames + additionalSignatures), alone, in
                                        a resource or in a whole ARM template (docs/secure-boot.md)
  template export NAME|ID [--out FILE]  a template as Azure's securityProfile.uefiSettings
  vars show FILE [--all] [--uefi-settings]
                                        decode PK/KEK/db/dbx of an OVMF NVRAM file; with
                                        --uefi-settings print them as Azure's securityProfile
  vars create --template NAME|ID [--secure-boot on|off] [--size 4m|2m] --out FILE
  vars sign --var PK|KEK|db|dbx --data FILE [--append] [--signer PK|KEK] [--key-dir DIR]
            [--time ISO-8601] --out FILE.auth
                                        a signed update (EFI_VARIABLE_AUTHENTICATION_2 + data);
                                        --data: certificates, ESL or hash list; empty file deletes
  vars update FILE --var PK|KEK|db|dbx --auth FILE.auth [--append] [--out FILE]
                                        verify a signed update against FILE's PK/KEK and apply it
  keys create --cn NAME [--out DIR] [--kind PK|KEK|db]
                                        RSA-2048 key (0600) + self-signed certificate + ESL
  setup [--source FILE] [--shim FILE]   extract the Microsoft certificates and dbx from Debian's
                                        /usr/share/OVMF/OVMF_VARS_4M.ms.fd into the key directory;
                                        with --shim, the SBAT levels of that signed shim
  sign ... | verify ...                 Authenticode signing and verification of EFI binaries

Common options:
  --state-dir DIR   state directory (default /var/lib/bulwark; keys in DIR/secureboot)
  --json            machine-readable output
  --help            this help`;

const common = {
  "state-dir": { type: "string" },
} as const;

function out(text: string): void {
  process.stdout.write(`${text}\n`);
}

export async function run(argv: string[]): Promise<number> {
  const [group, ...rest] = argv;
  if (group === "sign" || group === "verify") {
    const mod = (await import(
      group === "sign" ? "./cmd-secureboot-sign.js" : "./cmd-secureboot-verify.js"
    )) as {
      run(argv: string[]): Promise<number>;
    };
    return mod.run(rest);
  }
  if (group === undefined || group === "--help" || group === "-h" || group === "help") {
    out(help);
    return group === undefined ? 2 : 0;
  }
  switch (group) {
    case "template":
      return template(rest);
    case "vars":
      return vars(rest);
    case "keys":
      return keys(rest);
    case "setup":
      return setup(rest);
    default:
      throw usageError(`unknown secureboot verb '${group}'\n\n${help}`);
  }
}

function templateSummary(t: Template) {
  return { name: t.name, id: t.id, kind: t.kind, description: t.description };
}

async function template(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    ...common,
    name: { type: "string" },
    id: { type: "string" },
    description: { type: "string" },
    "uefi-settings": { type: "string" },
    pk: { type: "string" },
    kek: { type: "string", multiple: true },
    db: { type: "string", multiple: true },
    dbx: { type: "string", multiple: true },
    out: { type: "string" },
  });
  const verb = positionals[0];
  if (values.help) {
    out(help);
    return 0;
  }
  const stateDir = values["state-dir"] === undefined ? undefined : stateDirOption(values["state-dir"]);
  const custom = await loadCustomTemplates(stateDir);
  if (verb === "list") {
    const all: Template[] = [...BUILTIN_TEMPLATES, ...custom];
    if (values.json) printJson(all.map(templateSummary));
    else for (const t of all) out(`${t.name.padEnd(36)} ${t.id}  ${t.kind}`);
    return 0;
  }
  if (verb === "show") {
    const key = positionals[1];
    if (!key) throw usageError("template show needs NAME or ID");
    const t = findTemplate(key, custom);
    const ms = t.kind === "builtin" ? await loadMicrosoftSet(stateDir) : undefined;
    let pkCert: Uint8Array | undefined;
    try {
      pkCert = new Uint8Array(await readFile(path.join(secureBootDir(stateDir), "PK.der")));
    } catch {
      pkCert = undefined;
    }
    const resolved = resolveTemplate(t, pkCert ?? new Uint8Array(0), ms);
    const describe = (lists: readonly EfiSignatureList[]) => describeDatabase(lists);
    const pk =
      pkCert || (t.kind === "custom" && t.PK)
        ? describe(resolved.PK)
        : "this installation's PK (not created yet)";
    const view = {
      ...templateSummary(t),
      notes: t.kind === "builtin" ? t.notes : [],
      unavailable: resolved.unavailable,
      PK: pk,
      KEK: describe(resolved.KEK),
      db: describe(resolved.db),
      dbx: describe(resolved.dbx),
    };
    if (values.json) printJson(view);
    else {
      out(`${t.name} (${t.id}, ${t.kind})\n${t.description}`);
      for (const n of view.notes) out(`note: ${n}`);
      for (const u of resolved.unavailable) out(`not available on this machine: ${u}`);
      for (const name of ["PK", "KEK", "db", "dbx"] as const) {
        const v = view[name];
        out(`\n${name}:`);
        if (typeof v === "string") out(`  ${v}`);
        else if (v.length === 0) out("  (empty)");
        else for (const e of v) out(`  ${entryLine(e)}`);
      }
    }
    return 0;
  }
  if (verb === "import") {
    if (!values.name) throw usageError("template import needs --name");
    let vars: ImportedVars;
    let source: string;
    if (values["uefi-settings"]) {
      if (values.pk || values.kek || values.db || values.dbx)
        throw usageError("--uefi-settings excludes --pk/--kek/--db/--dbx");
      const text = new TextDecoder().decode(await readInputFile(values["uefi-settings"]));
      const settings = parseAzureUefiSettings(text);
      const named = settings.signatureTemplateNames.some((n) => n !== "NoSignatureTemplate");
      const imported = varsFromAzureUefiSettings(
        settings,
        named ? await loadMicrosoftSet(stateDir) : undefined,
      );
      vars = imported.vars;
      source = `uefiSettings ${path.basename(values["uefi-settings"])}${
        imported.templates.length ? ` (${imported.templates.join(" + ")} + additional signatures)` : ""
      }`;
      for (const u of imported.unavailable) process.stderr.write(`not available on this machine: ${u}\n`);
    } else {
      const lists = async (files: readonly string[] | undefined, allowHashes: boolean, what: string) => {
        const all: EfiSignatureList[] = [];
        for (const f of files ?? []) {
          const l = signatureListsFromFile(await readInputFile(f), `${what} ${path.basename(f)}`);
          if (!allowHashes && l.some((x) => x.type !== Guids.EFI_CERT_X509_GUID)) {
            throw uefiError(
              "UEFI_ERR_TEMPLATE_INVALID",
              `${what} ${f}: only X.509 certificates belong in ${what}`,
            );
          }
          all.push(...l);
        }
        return encodeSignatureDatabase(all);
      };
      const pk = values.pk ? await lists([values.pk], false, "PK") : undefined;
      vars = {
        ...(pk ? { PK: pk } : {}),
        KEK: await lists(values.kek, false, "KEK"),
        db: await lists(values.db, true, "db"),
        dbx: await lists(values.dbx, true, "dbx"),
      };
      source = [values.pk, ...(values.kek ?? []), ...(values.db ?? []), ...(values.dbx ?? [])]
        .filter((x): x is string => typeof x === "string")
        .map((f) => path.basename(f))
        .join(", ");
    }
    const t = makeCustomTemplate(
      {
        name: values.name,
        ...(values.id ? { id: values.id } : {}),
        ...(values.description ? { description: values.description } : {}),
        source,
        vars,
      },
      custom,
      () => randomUUID(),
    );
    const file = await saveCustomTemplate(stateDir, t);
    if (values.json) printJson({ ...templateSummary(t), file });
    else out(`imported ${t.name} (${t.id}) → ${file}`);
    return 0;
  }
  if (verb === "export") {
    const key = positionals[1];
    if (!key) throw usageError("template export needs NAME or ID");
    const t = findTemplate(key, custom);
    const ms = t.kind === "builtin" ? await loadMicrosoftSet(stateDir) : undefined;
    // The installation PK is never exported (an imported template gets the importer's own).
    const { document, skipped, notes } = azureDocumentForTemplate(
      t,
      resolveTemplate(t, new Uint8Array(0), ms),
    );
    const text = `${JSON.stringify(document, null, 2)}\n`;
    if (values.out) await writeOutputFile(values.out, text);
    else process.stdout.write(text);
    for (const n of notes) process.stderr.write(`note: ${n}\n`);
    for (const s of skipped) process.stderr.write(`not expressible in uefiSettings, skipped: ${s}\n`);
    return 0;
  }
  throw usageError(`expected 'template list|show|import|export'\n\n${help}`);
}

async function vars(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    ...common,
    all: { type: "boolean" },
    "uefi-settings": { type: "boolean" },
    template: { type: "string" },
    "secure-boot": { type: "string" },
    size: { type: "string" },
    out: { type: "string" },
    var: { type: "string" },
    data: { type: "string" },
    auth: { type: "string" },
    append: { type: "boolean" },
    signer: { type: "string" },
    "key-dir": { type: "string" },
    time: { type: "string" },
  });
  if (values.help) {
    out(help);
    return 0;
  }
  const verb = positionals[0];
  if (verb === "show") {
    const file = positionals[1];
    if (!file) throw usageError("vars show needs FILE");
    const bytes = await readInputFile(file);
    const store = parseVarStore(bytes);
    if (values["uefi-settings"]) {
      const lists = (name: "PK" | "KEK" | "db" | "dbx") => {
        const v = getVariable(store, name, secureBootVarGuid(name) as string);
        return v ? decodeSignatureDatabase(v.data) : [];
      };
      const { document, skipped } = azureDocumentForLists({
        PK: lists("PK"),
        KEK: lists("KEK"),
        db: lists("db"),
        dbx: lists("dbx"),
      });
      printJson(document);
      for (const s of skipped) process.stderr.write(`not expressible in uefiSettings, skipped: ${s}\n`);
      return 0;
    }
    const report = reportVarStore(store, bytes.length);
    if (values.json) printJson({ file, ...report, ...(values.all ? {} : { others: undefined }) });
    else {
      out(reportText(report, file));
      if (values.all) {
        out("\nOther variables:");
        for (const o of report.others)
          out(`  ${o.name.padEnd(24)} ${o.guidName ?? o.guid}  [${o.attributes}]  ${o.size} bytes`);
      }
    }
    return 0;
  }
  if (verb === "create") {
    if (!values.template || !values.out) throw usageError("vars create needs --template and --out");
    const sb = values["secure-boot"] ?? "on";
    if (sb !== "on" && sb !== "off") throw usageError("--secure-boot is on or off");
    const size = values.size ?? "4m";
    if (size !== "4m" && size !== "2m") throw usageError("--size is 4m or 2m");
    const summary = await writeVmNvram({
      template: values.template,
      out: values.out,
      secureBoot: sb === "on",
      size,
      ...(values["state-dir"] ? { stateDir: values["state-dir"] } : {}),
    });
    if (values.json) printJson({ ...summary, secureBoot: sb });
    else out(`wrote ${summary.file} (${summary.template}, Secure Boot ${sb}, ${summary.bytes} bytes)`);
    return 0;
  }
  if (verb === "sign" || verb === "update") {
    const name = values.var;
    if (name !== "PK" && name !== "KEK" && name !== "db" && name !== "dbx")
      throw usageError("--var is PK, KEK, db or dbx");
    const guid = secureBootVarGuid(name) as string;
    const attributes = SECURE_BOOT_DB_ATTRS | (values.append ? Attr.EFI_VARIABLE_APPEND_WRITE : 0);
    if (verb === "sign") {
      if (!values.data || !values.out) throw usageError("vars sign needs --data and --out");
      const raw = await readInputFile(values.data);
      const data = raw.length === 0 ? raw : encodeSignatureDatabase(signatureListsFromFile(raw, values.data));
      const signer = (values.signer ?? "PK") as KeyKind;
      if (signer !== "PK" && signer !== "KEK") throw usageError("--signer is PK or KEK");
      const k = await loadKey(values["key-dir"] ?? secureBootDir(values["state-dir"]), signer);
      const when = values.time ? new Date(values.time) : new Date();
      const auth = createSignedUpdate({
        name,
        guid,
        attributes,
        timeStamp: efiTimeFromDate(when),
        data,
        key: k.key,
        certificate: k.cert,
      });
      await writeOutputFile(values.out, auth);
      if (values.json)
        printJson({ file: values.out, var: name, signer, bytes: auth.length, timestamp: when.toISOString() });
      else out(`wrote ${values.out}: ${name} update signed by ${signer} (${auth.length} bytes)`);
      return 0;
    }
    const file = positionals[1];
    if (!file || !values.auth) throw usageError("vars update needs FILE and --auth");
    const store = parseVarStore(await readInputFile(file));
    const authBytes = await readInputFile(values.auth);
    const verdict = verifySignedUpdate(store, name, guid, attributes, authBytes);
    const next = applySignedUpdate(store, name, guid, attributes, authBytes);
    const target = values.out ?? file;
    await writeOutputFile(target, encodeVarStore(next), 0o600);
    if (values.json)
      printJson({
        file: target,
        var: name,
        authorisedBy: verdict.authorisedBy ?? null,
        findings: verdict.findings,
      });
    else
      out(
        `updated ${name} in ${target}${verdict.authorisedBy ? ` (authorised by ${verdict.authorisedBy.subject})` : ""}`,
      );
    return 0;
  }
  throw usageError(`expected 'vars show|create|sign|update'\n\n${help}`);
}

async function keys(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    ...common,
    cn: { type: "string" },
    out: { type: "string" },
    kind: { type: "string" },
  });
  if (values.help) {
    out(help);
    return 0;
  }
  if (positionals[0] !== "create") throw usageError(`expected 'keys create'\n\n${help}`);
  if (!values.cn) throw usageError("keys create needs --cn");
  const kind = (values.kind ?? "PK") as KeyKind;
  if (!["PK", "KEK", "db"].includes(kind)) throw usageError("--kind is PK, KEK or db");
  const dir = values.out ?? secureBootDir(values["state-dir"]);
  const k = await createKeyFiles({ cn: values.cn, dir, kind });
  if (values.json) printJson(k);
  else out(`created ${k.subject}: ${k.keyFile} (private, 0600), ${k.certFile}, ${k.derFile}, ${k.eslFile}`);
  return 0;
}

async function setup(argv: string[]): Promise<number> {
  const { values } = parse(argv, { ...common, source: { type: "string" }, shim: { type: "string" } }, false);
  if (values.help) {
    out(help);
    return 0;
  }
  try {
    const m = await installMicrosoftCertificates({
      ...(values["state-dir"] ? { stateDir: values["state-dir"] } : {}),
      ...(values.source ? { source: values.source } : {}),
      ...(values.shim ? { shim: values.shim } : {}),
    });
    if (values.json) printJson(m);
    else {
      out(`extracted from ${m.source} (sha256 ${m.sourceSha256}):`);
      for (const c of m.certificates) out(`  ${c.role.padEnd(28)} ${c.subject}`);
      out(`  dbx: ${m.dbx.bytes} bytes`);
      if (m.sbat)
        out(
          `  SBAT level (latest) from ${m.sbat.source}: ${m.sbat.levels.latest.trim().split("\n").join(" ")}`,
        );
    }
    return 0;
  } catch (e) {
    if (isBulwarkError(e)) throw e;
    throw uefiError("UEFI_ERR_IO", e instanceof Error ? e.message : String(e));
  }
}

/**
 * `bulwark secureboot verify EFI_FILE`: would Secure Boot run this EFI binary? Decides like edk2
 * (see src/uefi/authenticode.ts) with db/dbx from a template and/or certificate, ESL or hash-list
 * files. Exit 0 when allowed, 4 (refused) otherwise.
 */
import path from "node:path";
import { Exit } from "../core/errors.js";
import {
  imageAllowed,
  verifyImage,
  type ImageVerdict,
  type SignatureDatabaseModel,
} from "../uefi/authenticode.js";
import { loadCustomTemplates, loadMicrosoftSet, readInputFile } from "../host/secureboot-store.js";
import { UefiPeErrors, uefiPeError } from "../uefi/errors-pe.js";
import { Guids } from "../uefi/guid.js";
import { decodeSignatureDatabase, x509Certificates, type EfiSignatureList } from "../uefi/siglist.js";
import { findTemplate, resolveTemplate, signatureListsFromFile } from "../uefi/templates.js";
import { getVariable, parseVarStore } from "../uefi/varstore.js";
import { parse, printJson, usageError } from "./args.js";

const help = `Usage: bulwark secureboot verify EFI_FILE (--template NAME|ID | --vars FILE | --db FILE...) [--dbx FILE...]

Decides like UEFI firmware (edk2) whether Secure Boot would run EFI_FILE: allowed when a
signature chains to a db certificate (signer or any certificate in its PKCS #7 chain) with a
matching image digest, or the image hash is in db; refused when the image hash or a certificate
in a signer chain is in dbx. Unsigned images are allowed only by hash.

  --template NAME|ID  db and dbx of a Secure Boot template (e.g. MicrosoftUEFICertificateAuthority)
  --vars FILE         db and dbx of an OVMF NVRAM (variable store) file, e.g. a VM's
  --db FILE           db entries: PEM/DER certificate(s), EFI_SIGNATURE_LIST file or SHA-256 hash list
  --dbx FILE          dbx entries, same formats (added to the template's dbx)
  --state-dir DIR     state directory for templates and the Microsoft certificates
  --json              {allowed, reason, digest, signers, signatures}, and error when refused

Exit status: 0 allowed, 4 refused (UEFI_ERR_AUTHENTICODE_REFUSED), 5 not a valid PE/COFF image.`;

function modelOf(lists: readonly EfiSignatureList[]): SignatureDatabaseModel {
  const entries = (type: string): Uint8Array[] =>
    lists.filter((l) => l.type === type).flatMap((l) => l.entries.map((e) => e.data));
  return {
    x509: x509Certificates(lists),
    sha256: entries(Guids.EFI_CERT_SHA256_GUID),
    // EFI_CERT_X509_SHA256: ToBeSignedHash (32 bytes) then TimeOfRevocation (EFI_TIME), UEFI 2.10 32.4.1.
    x509Sha256: entries(Guids.EFI_CERT_X509_SHA256_GUID).map((d) => d.subarray(0, 32)),
  };
}

async function templateLists(
  name: string,
  stateDir: string | undefined,
): Promise<{ db: EfiSignatureList[]; dbx: EfiSignatureList[] }> {
  const t = findTemplate(name, await loadCustomTemplates(stateDir));
  if (t.kind === "custom") return { db: decodeSignatureDatabase(t.db), dbx: decodeSignatureDatabase(t.dbx) };
  // Only db and dbx are used; the PK slot takes no part in image verification.
  const r = resolveTemplate(t, new Uint8Array(0), await loadMicrosoftSet(stateDir));
  return { db: [...r.db], dbx: [...r.dbx] };
}

async function filesLists(files: readonly string[]): Promise<EfiSignatureList[]> {
  const out: EfiSignatureList[] = [];
  for (const f of files) out.push(...signatureListsFromFile(await readInputFile(f), path.basename(f)));
  return out;
}

/** The verdict as JSON: allowed, reason, digest, signers (subjects of valid signers), signatures. */
export function verdictJson(file: string, v: ImageVerdict): Record<string, unknown> {
  return {
    file,
    allowed: imageAllowed(v),
    reason: v.reason,
    digest: v.digest,
    signed: v.signed,
    signers: v.signatures.flatMap((s) =>
      s.signers.filter((x) => x.certificate).map((x) => x.certificate?.subject),
    ),
    signatures: v.signatures,
  };
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    template: { type: "string" },
    vars: { type: "string" },
    db: { type: "string", multiple: true },
    dbx: { type: "string", multiple: true },
    "state-dir": { type: "string" },
  });
  if (values.help) {
    process.stdout.write(`${help}\n`);
    return Exit.ok;
  }
  const file = positionals[0];
  if (!file || positionals.length > 1) throw usageError(`expected one EFI_FILE\n\n${help}`);
  if (!values.template && !values.vars && !values.db?.length) {
    throw usageError(`give --template, --vars or --db\n\n${help}`);
  }
  const db: EfiSignatureList[] = [];
  const dbx: EfiSignatureList[] = [];
  if (values.template) {
    const t = await templateLists(values.template, values["state-dir"]);
    db.push(...t.db);
    dbx.push(...t.dbx);
  }
  if (values.vars) {
    const store = parseVarStore(await readInputFile(values.vars));
    for (const [name, into] of [
      ["db", db],
      ["dbx", dbx],
    ] as const) {
      const v = getVariable(store, name, Guids.EFI_IMAGE_SECURITY_DATABASE_GUID);
      if (v && v.data.length) into.push(...decodeSignatureDatabase(v.data));
    }
  }
  db.push(...(await filesLists(values.db ?? [])));
  dbx.push(...(await filesLists(values.dbx ?? [])));
  const v = verifyImage(await readInputFile(file), { db: modelOf(db), dbx: modelOf(dbx) });
  const allowed = imageAllowed(v);
  // A refusal is final: it carries its catalogue code, and the exit status (4) comes from there.
  const refusal = allowed
    ? undefined
    : uefiPeError("UEFI_ERR_AUTHENTICODE_REFUSED", `${file}: ${v.reason}`, { digest: v.digest });
  if (values.json) printJson({ ...verdictJson(file, v), ...(refusal ? { error: refusal.toJSON() } : {}) });
  else {
    const lines = [
      `${file}: ${allowed ? "ALLOWED" : "REFUSED"}: ${v.reason}`,
      `  authenticode sha256 ${v.digest}`,
    ];
    for (const s of v.signatures) {
      const head = s.error
        ? `error: ${s.error}`
        : `${s.digestAlgorithm ?? "?"} digest ${s.digestMatches ? "matches" : "DOES NOT match"}`;
      lines.push(`  signature ${s.index}: ${head}`);
      for (const signer of s.signers) {
        lines.push(
          `    signer ${signer.certificate?.subject ?? "(certificate not in bag)"}: ${signer.signatureValid ? "valid" : "INVALID"}`,
        );
        for (const c of signer.chain.slice(1)) lines.push(`      issued by ${c.subject}`);
      }
      if (s.dbMatch)
        lines.push(
          `    db: ${s.dbMatch.kind === "sha256" ? "image hash" : (s.dbMatch.certificate?.subject ?? "")}`,
        );
      if (s.dbxMatch)
        lines.push(
          `    dbx: ${s.dbxMatch.kind === "sha256" ? "image hash" : (s.dbxMatch.certificate?.subject ?? "")}`,
        );
    }
    process.stdout.write(`${lines.join("\n")}\n`);
    if (refusal) process.stderr.write(`bulwark: ${refusal.code}: ${refusal.message}\n`);
  }
  return refusal ? UefiPeErrors[refusal.code].exit : Exit.ok;
}

/**
 * `bulwark tpm pcrs|quote-verify`: a thin layer over src/tpm. This file is the adapter that
 * reads files and opens the TPM connection; the library never does. Files use tpm2-tools
 * formats so operators can mix tools.
 */
import { X509Certificate } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { Exit } from "../core/errors.js";
import {
  algName,
  fromHex,
  hashByName,
  HASHES,
  parsePcrSpec,
  parseTarget,
  readPcrFile,
  readPcrValuesFile,
  readPcrValuesText,
  selectedIndices,
  Tpm,
  tpmError,
  isTpmError,
  loadPublicKey,
  verifyQuote,
  writePcrFile,
  TpmErrors,
  checkAkPublic,
  checkEkPublic,
  makeCredential,
  objectName,
  readEkCertificates,
  writeCredentialFile,
  TPMS_ATTEST,
  TPM_ST,
  type PcrValues,
  type TpmsPcrSelection,
  type TpmsQuoteInfo,
} from "../tpm/index.js";
import { decode } from "../core/codec.js";
import { VerdictBuilder } from "../core/verdict.js";
import { toHex } from "../core/bytes.js";
import { jsonReplacer, parse, printJson, usageError } from "./args.js";

const help = `Usage: bulwark tpm <pcrs|quote-verify|make-credential|ek-certs> [options]

  pcrs [--tpm TARGET] [--pcr-list SPEC] [--output FILE] [--startup]
      read PCR values from a TPM and print them (like tpm2_pcrread)
      --tpm, -T TARGET   swtpm:host=127.0.0.1,port=2321 (control port = port+1)
                         swtpm:path=/run/swtpm.sock | mssim:host=H,port=P | device:/dev/tpmrm0
                         (default: $TPM2TOOLS_TCTI if set, else device:/dev/tpmrm0)
      --pcr-list SPEC    e.g. sha256:0,1,7+sha1:0 or sha256:all (default: all PCRs of all active banks)
      --output FILE      also write the values as a tpm2-tools "serialized" PCR file
      --startup          power the simulator on and send TPM2_Startup(CLEAR) first

  quote-verify --ak AK_PUB --msg TPMS_ATTEST --sig TPMT_SIGNATURE --nonce HEX [--pcrs PCR_FILE]
               [--pcr-list SPEC]
      verify a quote as tpm2_checkquote does, with findings
      --ak FILE      AK public: TPM2B_PUBLIC (tpm2_createak -u), TPMT_PUBLIC or PEM
      --msg FILE     TPMS_ATTEST bytes (tpm2_quote -m)
      --sig FILE     TPMT_SIGNATURE (tpm2_quote -s, tss format)
      --pcrs FILE    PCR values to recompute pcrDigest: tpm2_quote -o (serialized, or -F values),
                     tpm2_pcrread output, or JSON {"sha256": {"0": "hex"}} (bulwark tpm pcrs --json)
      --nonce HEX    the qualifying data the quote must carry (tpm2_quote -q)
      --pcr-list SPEC  the PCR selection the quote must cover
      Exit 0 when valid; 4 (refused) with findings when not.

  make-credential --ek EK_PUB (--ak AK_PUB | --name HEX) --secret FILE --output FILE
      TPM2_MakeCredential in software (like tpm2_makecredential -T none); checks the EK and AK
      public areas first and refuses (exit 4) with findings when they are not an EK / an AK
      --ek FILE      EK public, TPM2B_PUBLIC (tpm2_createek -u, tpm2_readpublic -o)
      --ak FILE      AK public, TPM2B_PUBLIC; its Name is computed (or give --name HEX)
      --secret FILE  the credential, 1..32 bytes
      --output FILE  tpm2-tools credential file for tpm2_activatecredential -i

  ek-certs [--tpm TARGET] [--output-dir DIR]
      list the EK certificates in TPM NV (0x01c00002, 0x01c0000a, high range); with
      --output-dir write each as DER (ek-0x01c00002.der ...)

Options for every subcommand:
  --json         machine-readable output
  --help, -h     this help`;

function readInput(file: string, what: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(file));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "error";
    throw tpmError("TPM_ERR_READ", `cannot read ${what} '${file}': ${code}`, { file, reason: code });
  }
}

const bankName = (alg: number): string => HASHES.get(alg)?.name ?? algName(alg);
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

function valuesJson(values: PcrValues): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const [alg, bank] of values) {
    out[bankName(alg)] = Object.fromEntries(
      [...bank].sort((a, b) => a[0] - b[0]).map(([i, v]) => [String(i), hex(v)]),
    );
  }
  return out;
}

async function pcrs(argv: string[]): Promise<number> {
  const { values: o } = parse(
    argv,
    {
      tpm: { type: "string", short: "T" },
      tcti: { type: "string" },
      "pcr-list": { type: "string", short: "l" },
      output: { type: "string", short: "o" },
      startup: { type: "boolean" },
    },
    false,
  );
  if (o.help) {
    process.stdout.write(`${help}\n`);
    return Exit.ok;
  }
  const spec = o.tpm ?? o.tcti ?? process.env["TPM2TOOLS_TCTI"] ?? "device:/dev/tpmrm0";
  const target = parseTarget(spec);
  const tpm = new Tpm(target.transport);
  try {
    if (o.startup) {
      if (!target.powerOn) throw usageError("--startup needs a simulator target (swtpm: or mssim:)");
      await target.powerOn();
      await tpm.startup();
    }
    let selection: TpmsPcrSelection[];
    if (o["pcr-list"]) {
      selection = parsePcrSpec(o["pcr-list"], hashByName);
    } else {
      selection = (await tpm.pcrBanks()).filter((b) => b.pcrSelect.some((x) => x !== 0));
    }
    const { values, updateCounter } = await tpm.pcrRead(selection);
    const read = selection
      .map((s) => ({ hash: s.hash, indices: selectedIndices(s).filter((i) => values.get(s.hash)?.has(i)) }))
      .filter((s) => s.indices.length > 0);
    if (o.output) {
      const got = read.map((s) => ({
        hash: s.hash,
        pcrSelect: Uint8Array.from({ length: 3 }, (_, b) =>
          s.indices.reduce((a, i) => (i >> 3 === b ? a | (1 << (i & 7)) : a), 0),
        ),
      }));
      writeFileSync(o.output, writePcrFile(got, values));
    }
    if (o.json) {
      printJson({ target: spec, updateCounter, pcrs: valuesJson(values) });
    } else {
      const lines: string[] = [];
      for (const s of read) {
        lines.push(`  ${bankName(s.hash)}:`);
        for (const i of s.indices)
          lines.push(
            `    ${String(i).padStart(2)} : 0x${hex(values.get(s.hash)?.get(i) ?? new Uint8Array(0)).toUpperCase()}`,
          );
      }
      process.stdout.write(`${lines.join("\n")}\n`);
    }
    return Exit.ok;
  } finally {
    await tpm.close();
  }
}

function loadPcrs(bytes: Uint8Array, quoted: Uint8Array): PcrValues {
  const head = new TextDecoder().decode(bytes.subarray(0, 64)).trimStart();
  if (head.startsWith("{") || /^[A-Za-z0-9_]+\s*:/.test(head)) return readPcrValuesText(bytes);
  try {
    return readPcrFile(bytes).values;
  } catch (e) {
    if (!isTpmError(e)) throw e;
    // Not the serialized layout: try "values" against the selection the quote names.
    let attest;
    try {
      attest = decode(TPMS_ATTEST, quoted);
    } catch {
      throw e;
    }
    if (attest.type !== TPM_ST.ATTEST_QUOTE) throw e;
    return readPcrValuesFile(bytes, (attest.attested as TpmsQuoteInfo).pcrSelect);
  }
}

async function quoteVerify(argv: string[]): Promise<number> {
  const { values: o } = parse(
    argv,
    {
      ak: { type: "string", short: "u" },
      msg: { type: "string", short: "m" },
      sig: { type: "string", short: "s" },
      pcrs: { type: "string", short: "f" },
      nonce: { type: "string", short: "q" },
      "pcr-list": { type: "string", short: "l" },
    },
    false,
  );
  if (o.help) {
    process.stdout.write(`${help}\n`);
    return Exit.ok;
  }
  // An empty --nonce "" is a real value: a quote may carry empty qualifying data (GCE's vTPM does).
  for (const k of ["ak", "msg", "sig", "nonce"] as const)
    if (o[k] === undefined || (k !== "nonce" && o[k] === "")) throw usageError(`quote-verify needs --${k}`);
  const ak = loadPublicKey(readInput(o.ak!, "AK public key"));
  const quoted = readInput(o.msg!, "quote message");
  const signature = readInput(o.sig!, "signature");
  const nonce = fromHex(o.nonce!);
  const pcrValues = o.pcrs ? loadPcrs(readInput(o.pcrs, "PCR file"), quoted) : undefined;
  const expectedSelection = o["pcr-list"] ? parsePcrSpec(o["pcr-list"], hashByName) : undefined;
  const verdict = verifyQuote({
    ak: ak.public ?? ak.key,
    quoted,
    signature,
    nonce,
    ...(pcrValues ? { pcrs: pcrValues } : {}),
    ...(expectedSelection ? { expectedSelection } : {}),
  });
  if (o.json) {
    printJson({
      ok: verdict.ok,
      findings: verdict.findings,
      passed: verdict.passed,
      akFormat: ak.format,
      ...(verdict.attest
        ? { attest: JSON.parse(JSON.stringify(verdict.attest, jsonReplacer)) as unknown }
        : {}),
    });
  } else {
    const lines = [verdict.ok ? "quote: VALID" : "quote: INVALID"];
    for (const f of verdict.findings)
      lines.push(
        `  ${f.severity.toUpperCase()} ${f.id}: ${f.message} (expected ${f.expected}, got ${f.got})`,
      );
    lines.push(`  passed: ${verdict.passed.join(", ") || "(none)"}`);
    (verdict.ok ? process.stdout : process.stderr).write(`${lines.join("\n")}\n`);
  }
  return verdict.ok ? Exit.ok : TpmErrors.TPM_ERR_VERIFICATION_FAILED.exit;
}

async function makeCredentialCmd(argv: string[]): Promise<number> {
  const { values: o } = parse(
    argv,
    {
      ek: { type: "string", short: "u" },
      ak: { type: "string" },
      name: { type: "string", short: "n" },
      secret: { type: "string", short: "s" },
      output: { type: "string", short: "o" },
    },
    false,
  );
  if (o.help) {
    process.stdout.write(`${help}\n`);
    return Exit.ok;
  }
  if (!o.ek || !o.secret || !o.output || (!o.ak && !o.name)) {
    throw usageError("make-credential needs --ek, --secret, --output and --ak or --name");
  }
  const ek = loadPublicKey(readInput(o.ek, "EK public key"));
  if (!ek.public)
    throw tpmError(
      "TPM_ERR_FILE_FORMAT",
      "--ek must be a TPM2B_PUBLIC or TPMT_PUBLIC (PEM has no TPM parameters)",
    );
  const secret = readInput(o.secret, "secret");
  const v = new VerdictBuilder();
  v.merge(checkEkPublic(ek.public.value));
  let name: Uint8Array;
  if (o.ak) {
    const ak = loadPublicKey(readInput(o.ak, "AK public key"));
    if (!ak.public) throw tpmError("TPM_ERR_FILE_FORMAT", "--ak must be a TPM2B_PUBLIC or TPMT_PUBLIC");
    v.merge(checkAkPublic(ak.public.value));
    name = objectName(ak.public);
    if (o.name && toHex(name) !== o.name.toLowerCase().replace(/^0x/, "")) {
      v.fail("ak.name", o.name, toHex(name), "--name is not the Name of --ak");
    }
  } else {
    name = fromHex(o.name!);
  }
  const verdict = v.verdict();
  if (!verdict.ok) {
    if (o.json) printJson({ ok: false, findings: verdict.findings });
    else
      for (const f of verdict.findings)
        process.stderr.write(
          `${f.severity.toUpperCase()} ${f.id}: ${f.message} (expected ${f.expected}, got ${f.got})\n`,
        );
    return TpmErrors.TPM_ERR_VERIFICATION_FAILED.exit;
  }
  writeFileSync(o.output, writeCredentialFile(makeCredential(ek.public.value, name, secret)));
  if (o.json) printJson({ ok: true, name: toHex(name), output: o.output, findings: verdict.findings });
  else process.stdout.write(`credential for ${toHex(name)} written to ${o.output}\n`);
  return Exit.ok;
}

async function ekCerts(argv: string[]): Promise<number> {
  const { values: o } = parse(
    argv,
    { tpm: { type: "string", short: "T" }, tcti: { type: "string" }, "output-dir": { type: "string" } },
    false,
  );
  if (o.help) {
    process.stdout.write(`${help}\n`);
    return Exit.ok;
  }
  const spec = o.tpm ?? o.tcti ?? process.env["TPM2TOOLS_TCTI"] ?? "device:/dev/tpmrm0";
  const tpm = new Tpm(parseTarget(spec).transport);
  try {
    const certs = await readEkCertificates(tpm);
    const rows = certs.map((c) => {
      const index = `0x${c.index.toString(16).padStart(8, "0")}`;
      let subject = "";
      let issuer = "";
      try {
        const x = new X509Certificate(Buffer.from(c.der));
        subject = x.subject.replace(/\n/g, ", ");
        issuer = x.issuer.replace(/\n/g, ", ");
      } catch {
        subject = "(not a parsable X.509 certificate)";
      }
      if (o["output-dir"]) writeFileSync(path.join(o["output-dir"], `ek-${index}.der`), c.der);
      return { index, kind: c.kind, bytes: c.der.length, subject, issuer };
    });
    if (o.json) printJson({ target: spec, certificates: rows });
    else
      process.stdout.write(
        rows.map((r) => `${r.index}  ${r.kind}  ${r.bytes} bytes  issuer: ${r.issuer || "?"}`).join("\n") +
          (rows.length ? "\n" : "(no EK certificates)\n"),
      );
    return Exit.ok;
  } finally {
    await tpm.close();
  }
}

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    process.stdout.write(`${help}\n`);
    return sub === undefined ? Exit.usage : Exit.ok;
  }
  if (sub === "pcrs") return pcrs(rest);
  if (sub === "quote-verify") return quoteVerify(rest);
  if (sub === "make-credential") return makeCredentialCmd(rest);
  if (sub === "ek-certs") return ekCerts(rest);
  throw usageError(`unknown tpm subcommand '${sub}'; see bulwark tpm --help`);
}

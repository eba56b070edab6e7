/**
 * `bulwark secureboot sign EFI_FILE --key K --cert C --out OUT`: Authenticode-signs an EFI
 * binary as sbsign does (src/uefi/authenticode-sign.ts). The output is written atomically
 * (temp file, fsync, rename). The key is read from its file only; it never appears in output.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from "node:crypto";
import { bytesEqual } from "../core/bytes.js";
import { Exit } from "../core/errors.js";
import { Asn1Error } from "../asn1/errors.js";
import { certificateBytes, parseCertificate } from "../asn1/x509.js";
import { signPe } from "../uefi/authenticode-sign.js";
import { inspectImage } from "../uefi/authenticode.js";
import { UefiPeError } from "../uefi/errors-pe.js";
import { readInputFile, writeOutputFile } from "../host/secureboot-store.js";
import { parse, printJson, usageError } from "./args.js";

const help = `Usage: bulwark secureboot sign EFI_FILE --key KEY --cert CERT --out OUT [--append] [--chain CERT...]

Signs a PE/COFF EFI binary with Authenticode (PKCS #7, SHA-256), like sbsign.

  --key KEY       unencrypted private key, PEM or DER (RSA; EC P-256/P-384 also work but UEFI
                  firmware usually accepts RSA only)
  --cert CERT     the signer's certificate, PEM or DER
  --chain CERT    intermediate certificate(s) to include in the signature
  --out OUT       output file (written atomically; may equal EFI_FILE)
  --append        keep existing signatures and add this one (default: replace them)
  --json          {out, digest, signatures}`;

function loadKey(bytes: Uint8Array): KeyObject {
  const text = Buffer.from(bytes).toString("latin1");
  try {
    return text.includes("-----BEGIN")
      ? createPrivateKey({ key: text, format: "pem" })
      : createPrivateKey({ key: Buffer.from(bytes), format: "der", type: "pkcs8" });
  } catch {
    // The node:crypto message may quote key material: never pass it on.
    throw new UefiPeError(
      "UEFI_ERR_PE_SIGNING_KEY",
      "the --key file is not an unencrypted PEM or PKCS#8 DER private key",
    );
  }
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    key: { type: "string" },
    cert: { type: "string" },
    chain: { type: "string", multiple: true },
    out: { type: "string" },
    append: { type: "boolean" },
  });
  if (values.help) {
    process.stdout.write(`${help}\n`);
    return Exit.ok;
  }
  const file = positionals[0];
  if (!file || positionals.length > 1) throw usageError(`expected one EFI_FILE\n\n${help}`);
  if (!values.key || !values.cert || !values.out)
    throw usageError(`--key, --cert and --out are required\n\n${help}`);
  const key = loadKey(await readInputFile(values.key));
  let certificate: Uint8Array;
  try {
    certificate = certificateBytes(await readInputFile(values.cert));
    const cert = parseCertificate(certificate);
    const spki = new Uint8Array(createPublicKey(key).export({ type: "spki", format: "der" }));
    if (!bytesEqual(spki, cert.spkiRaw)) {
      throw new UefiPeError("UEFI_ERR_PE_SIGNING_KEY", "the --key does not belong to the --cert certificate");
    }
  } catch (e) {
    if (e instanceof Asn1Error)
      throw new Asn1Error("ASN1_ERR_INVALID_CERTIFICATE", `--cert: ${e.message}`, e.details);
    throw e;
  }
  const chain: Uint8Array[] = [];
  for (const c of values.chain ?? []) chain.push(certificateBytes(await readInputFile(c)));
  const signed = signPe(await readInputFile(file), {
    key,
    certificate,
    chain,
    mode: values.append ? "append" : "replace",
  });
  await writeOutputFile(values.out, signed);
  const v = inspectImage(signed);
  if (values.json) {
    printJson({
      out: values.out,
      digest: v.digest,
      signatures: v.signatures.map((s) => ({ index: s.index, signer: s.signers[0]?.certificate?.subject })),
    });
  } else {
    process.stdout.write(
      `signed ${file} -> ${values.out} (authenticode sha256 ${v.digest}, ${v.signatures.length} signature(s))\n`,
    );
  }
  return Exit.ok;
}

import { readFile } from "node:fs/promises";
import { writeFileAtomic } from "../io/atomic.js";
import { GuardianStore } from "../host/guardians.js";
import { guardianThumbprint } from "../protector/guardian.js";
import { parse, printJson, usageError } from "./args.js";
import { stateDirOption } from "./state-dir.js";

const help = `Usage: bulwark guardian <verb> [--state-dir DIR] [--json]

  new NAME                         create a guardian (signing + encryption keys and certificates)
  list                             guardians on this host (local ones hold private keys)
  export NAME [--private] [--passphrase-file F] [--out FILE]
                                   PEM: certificates only, or with the private keys (0600;
                                   encrypted when a passphrase file is given)
  export NAME --format pkcs12 --passphrase-file F --out FILE
                                   PKCS#12 with the private keys (PBES2 AES-256-CBC, SHA-256 MAC)
  import FILE [--name NAME] [--passphrase-file F]
                                   a guardian's PEM (public, to grant it access, or with keys)
                                   or PKCS#12 (needs --passphrase-file); the format is detected
  remove NAME

The host's local guardian 'UntrustedGuardian' is created on first need (local mode).
Passphrases are read from a file (first line), never from the command line.`;

async function passphrase(file: string | undefined): Promise<string | undefined> {
  return file === undefined ? undefined : (await readFile(file, "utf8")).replace(/\r?\n$/, "");
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    "state-dir": { type: "string" },
    private: { type: "boolean" },
    "passphrase-file": { type: "string" },
    out: { type: "string" },
    name: { type: "string" },
    format: { type: "string" },
  });
  if (values.help || positionals.length === 0) {
    process.stdout.write(`${help}\n`);
    return values.help ? 0 : 2;
  }
  const store = new GuardianStore(stateDirOption(values["state-dir"]));
  const [verb, arg] = positionals;
  const json = values.json === true;
  switch (verb) {
    case "new": {
      if (!arg) throw usageError("guardian new needs a NAME");
      const g = await store.create(arg);
      const e = { name: g.name, thumbprint: guardianThumbprint(g), hasPrivateKey: true };
      if (json) printJson(e);
      else process.stdout.write(`created guardian '${e.name}' (${e.thumbprint})\n`);
      return 0;
    }
    case "list": {
      const all = await store.list();
      if (json) printJson(all);
      else
        for (const g of all)
          process.stdout.write(
            `${g.name.padEnd(24)} ${g.hasPrivateKey ? "local " : "public"} ${g.thumbprint}\n`,
          );
      return 0;
    }
    case "export": {
      if (!arg) throw usageError("guardian export needs a NAME");
      const format = values.format ?? "pem";
      if (format !== "pem" && format !== "pkcs12") throw usageError("--format takes pem or pkcs12");
      if (format === "pkcs12") {
        const pass = await passphrase(values["passphrase-file"]);
        if (pass === undefined) throw usageError("a PKCS#12 export needs --passphrase-file");
        if (!values.out) throw usageError("a PKCS#12 export needs --out FILE");
        await writeFileAtomic(values.out, await store.exportPkcs12(arg, pass), 0o600);
        if (json) printJson({ exported: arg, format, out: values.out });
        return 0;
      }
      const pem = values.private
        ? await store.exportPrivate(arg, await passphrase(values["passphrase-file"]))
        : await store.exportPublic(arg);
      if (values.out) await writeFileAtomic(values.out, pem, values.private ? 0o600 : 0o644);
      else process.stdout.write(pem);
      return 0;
    }
    case "import": {
      if (!arg) throw usageError("guardian import needs a FILE");
      const pass = await passphrase(values["passphrase-file"]);
      const bytes = await readFile(arg);
      const isPem = bytes.subarray(0, 64).toString("latin1").includes("-----BEGIN");
      let e;
      if (!isPem && bytes[0] === 0x30) {
        if (pass === undefined) throw usageError("a PKCS#12 file needs --passphrase-file");
        e = await store.importPkcs12(bytes, pass, values.name ? { name: values.name } : {});
      } else {
        e = await store.import(bytes.toString("utf8"), {
          ...(values.name ? { name: values.name } : {}),
          ...(pass === undefined ? {} : { passphrase: pass }),
        });
      }
      if (json) printJson(e);
      else
        process.stdout.write(
          `imported ${e.hasPrivateKey ? "local" : "public"} guardian '${e.name}' (${e.thumbprint})\n`,
        );
      return 0;
    }
    case "remove": {
      if (!arg) throw usageError("guardian remove needs a NAME");
      await store.remove(arg);
      if (json) printJson({ removed: arg });
      else process.stdout.write(`removed guardian '${arg}'\n`);
      return 0;
    }
    default:
      throw usageError(`unknown guardian verb '${verb}'\n\n${help}`);
  }
}

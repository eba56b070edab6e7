import { readFileSync } from "node:fs";
import { isBulwarkError, Exit } from "../core/errors.js";
import { commands, type CommandModule } from "./commands.js";

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

export function usage(): string {
  const rows = commands.map((c) => `  ${c.name.padEnd(14)} ${c.summary}`);
  return [
    "Usage: bulwark <command> [options]",
    "",
    "Hyper-V Generation 2 VM security for KVM/QEMU.",
    "",
    "Commands:",
    ...rows,
    "",
    "Global options:",
    "  --json         machine-readable output",
    "  --help, -h     help for a command",
    "  --version      print the version",
    "",
    "Run `bulwark <command> --help` for a command's options.",
  ].join("\n");
}

/** Runs one CLI invocation and returns its exit status; never calls process.exit. */
export async function runCli(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === "--version" || first === "-V") {
    process.stdout.write(`bulwark ${version()}\n`);
    return Exit.ok;
  }
  if (first === undefined || first === "--help" || first === "-h" || first === "help") {
    process.stdout.write(`${usage()}\n`);
    return first === undefined ? Exit.usage : Exit.ok;
  }
  const entry = commands.find((c) => c.name === first);
  if (!entry) {
    process.stderr.write(`bulwark: unknown command '${first}'\n\n${usage()}\n`);
    return Exit.usage;
  }
  const json = rest.includes("--json");
  try {
    const mod: CommandModule = await entry.load();
    return await mod.run(rest);
  } catch (e) {
    return reportError(e, json);
  }
}

/** Prints an error the way every verb does and returns the catalogue's exit status. */
export async function reportError(thrown: unknown, json: boolean): Promise<number> {
  // A file-system failure that no domain named is still not an internal error: it names the file.
  const { asFileError } = await import("../host/file-errors.js");
  const e = asFileError(thrown);
  if (isBulwarkError(e)) {
    // Lazy: the catalogue imports every domain, which --version must not pay for.
    const { specFor } = await import("../catalogue.js");
    const spec = specFor(e.code);
    if (json) process.stdout.write(`${JSON.stringify({ error: e.toJSON() })}\n`);
    else process.stderr.write(`bulwark: ${e.code}: ${e.message}\n`);
    return spec?.exit ?? Exit.failure;
  }
  const message = e instanceof Error ? e.message : String(e);
  if (json) process.stdout.write(`${JSON.stringify({ error: { code: "CORE_ERR_INTERNAL", message } })}\n`);
  else process.stderr.write(`bulwark: internal error: ${message}\n`);
  return Exit.failure;
}

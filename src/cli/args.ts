import { parseArgs, type ParseArgsConfig } from "node:util";
import type { BulwarkError } from "../core/errors.js";
import { cliError } from "./errors.js";

export function usageError(message: string): BulwarkError {
  return cliError("CLI_ERR_USAGE", message);
}

type Options = NonNullable<ParseArgsConfig["options"]>;

/**
 * Parses a verb's arguments with node:util parseArgs; unknown options become CLI_ERR_USAGE.
 * `--json` and `--help` are accepted by every verb.
 */
export function parse<O extends Options>(argv: string[], options: O, allowPositionals = true) {
  try {
    return parseArgs({
      args: argv,
      options: { ...options, json: { type: "boolean" }, help: { type: "boolean", short: "h" } },
      allowPositionals,
      strict: true,
    });
  } catch (e) {
    // node's wording, minus its advice about positionals that start with '-' (not our case).
    const m = (e instanceof Error ? e.message : String(e)).replace(
      /\. To specify a positional argument.*$/s,
      "",
    );
    throw usageError(`${m} (see --help)`);
  }
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, jsonReplacer, 2)}\n`);
}

/** Bytes print as hex, bigints as decimal strings: JSON never fails on our objects. */
export function jsonReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value).toString("hex");
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Map) return Object.fromEntries(value);
  return value;
}

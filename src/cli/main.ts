#!/usr/bin/env node
/**
 * The `bulwark` command. Kept tiny so `bulwark --version` starts fast: each verb's module is
 * imported only when that verb runs.
 */
import { runCli } from "./run.js";

// A reader that stops early (`bulwark … | head`) is not an error: end quietly, as Unix tools do.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(0);
  throw e;
});

process.exitCode = await runCli(process.argv.slice(2));

#!/usr/bin/env node
/**
 * The `bulwark` command. Kept tiny so `bulwark --version` starts fast: each verb's module is
 * imported only when that verb runs.
 */
import { runCli } from "./run.js";

process.exitCode = await runCli(process.argv.slice(2));

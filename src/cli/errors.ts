/**
 * The CLI's own error codes. Kept apart from args.ts so that the catalogue (src/catalogue.ts)
 * can list them without importing the argument parser or anything else of the CLI.
 */
import { defineErrors, errorFactory, Exit } from "../core/errors.js";

export const CliErrors = defineErrors("CLI", {
  CLI_ERR_USAGE: {
    summary: "The command line is not valid for this verb; see its --help.",
    exit: Exit.usage,
    http: 400,
  },
});

export const cliError = errorFactory(CliErrors, "CliError");

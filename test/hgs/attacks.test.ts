/** The named attack cases (test/helpers/hgs-attack-suite.ts) against the embedded SQLite store. */
import { defineAttackSuites } from "../helpers/hgs-attack-suite.js";

defineAttackSuites("sqlite", () => Promise.resolve(undefined));

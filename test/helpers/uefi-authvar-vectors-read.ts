/** Reads test/vectors/uefi/authvar-signedattrs (made by uefi-authvar-vectors.ts). */
import { readFileSync } from "node:fs";
import path from "node:path";
import { repoPath } from "./paths.js";

export const AUTHVAR_VECTOR_DIR = repoPath("test/vectors/uefi/authvar-signedattrs");

export interface RecordedCase {
  readonly id: string;
  readonly description: string;
  /** What OVMF did with the update. */
  readonly edk2: "accepted" | "refused";
  /** The guest's write error (errno text) when refused. */
  readonly edk2Error?: string;
}

export function recordedCases(): RecordedCase[] {
  const doc = JSON.parse(readFileSync(path.join(AUTHVAR_VECTOR_DIR, "cases.json"), "utf8")) as {
    cases: RecordedCase[];
  };
  return doc.cases;
}

/** A case's `.auth` file: EFI_VARIABLE_AUTHENTICATION_2 ‖ data, signed for db with attributes 0x67. */
export function caseAuthPath(id: string): string {
  return path.join(AUTHVAR_VECTOR_DIR, `${id}.auth`);
}

export function caseAuth(id: string): Uint8Array {
  return new Uint8Array(readFileSync(caseAuthPath(id)));
}

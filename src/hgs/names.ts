/**
 * Names an operator reads: hosts and baselines. They are shown by `hgs host list`, the admin
 * API, audit entries and health certificates, so a name must not be able to move the cursor,
 * recolour the terminal, reorder the text around it (Unicode bidi overrides, Trojan Source,
 * CVE-2021-42574), hide characters or look like another name.
 *
 * The rule (checked at registration, HGS_ERR_INVALID_NAME):
 *   - 1..256 UTF-16 code units (the health certificate's `name` claim bound);
 *   - Unicode NFC, so two names that look alike are the same string;
 *   - no character of general category C (Cc: C0 and C1 controls, DEL; Cf: bidi embeddings,
 *     overrides, isolates and marks, zero-width space/joiners, word joiner, BOM, soft hyphen,
 *     tag characters, interlinear annotations; Cs: lone surrogates; Co: private use; Cn:
 *     unassigned), no line or paragraph separator (Zl, Zp), and no space other than U+0020;
 *   - no leading or trailing space, and no combining mark first.
 * Letters of any script are fine. What this does not stop: names in different scripts that
 * look alike (Cyrillic "а" for Latin "a"); hosts are identified by their id, never by name.
 *
 * Names already stored before this rule existed are shown through {@link printableName}.
 */
import { hgsError } from "../attest/errors.js";

export const MAX_NAME_UNITS = 256;

/** Characters never allowed in a name and always escaped when one is shown. */
const HIDDEN = /[\p{C}\p{Zl}\p{Zp}]|(?! )\p{Zs}/u;
const HIDDEN_ALL = /[\p{C}\p{Zl}\p{Zp}\\]|(?! )\p{Zs}/gu;

/** Why `name` is not acceptable, or undefined when it is. */
export function nameProblem(name: unknown): string | undefined {
  if (typeof name !== "string" || name.length === 0) return "a name cannot be empty";
  if (name.length > MAX_NAME_UNITS) return `a name is at most ${MAX_NAME_UNITS} characters`;
  const hidden = HIDDEN.exec(name);
  if (hidden) {
    const cp = hidden[0].codePointAt(0) ?? 0;
    return `a name cannot contain U+${cp.toString(16).toUpperCase().padStart(4, "0")} (control, format, invisible or separator character)`;
  }
  if (name !== name.trim()) return "a name cannot begin or end with a space";
  if (/^\p{M}/u.test(name)) return "a name cannot begin with a combining mark";
  if (name !== name.normalize("NFC")) return "a name must be in Unicode NFC";
  return undefined;
}

/** Refuses a name outside the rule above (HGS_ERR_INVALID_NAME); `what` names the field. */
export function checkName(name: unknown, what = "name"): asserts name is string {
  const problem = nameProblem(name);
  // The name itself is not echoed: it is what the operator must not see raw.
  if (problem) throw hgsError("HGS_ERR_INVALID_NAME", `${what}: ${problem}`, { field: what });
}

/**
 * The name as text safe to print: every character the rule refuses, and the backslash, as
 * `\u{hex}` (a backslash as `\\`), so an escape shown cannot be forged by the name itself.
 * For rows stored before names were checked.
 */
export function printableName(name: string): string {
  return name.replace(HIDDEN_ALL, (c) =>
    c === "\\" ? "\\\\" : `\\u{${(c.codePointAt(0) ?? 0).toString(16)}}`,
  );
}

import { fileURLToPath } from "node:url";
import path from "node:path";

/** Repository root, from dist/test/helpers/paths.js or test/helpers/paths.ts. */
export const repoRoot = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  import.meta.url.includes("/dist/") ? "../../.." : "../..",
);

export function repoPath(...parts: string[]): string {
  return path.join(repoRoot, ...parts);
}

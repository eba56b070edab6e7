import path from "node:path";
import { fileURLToPath } from "node:url";

/** The package root (works from src/ under a TS loader and from dist/src/). */
export const packageRoot: string = (() => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  return here.includes(`${path.sep}dist${path.sep}`)
    ? path.resolve(here, "../../..")
    : path.resolve(here, "../..");
})();

/** Where downloaded packages and built guest images are cached (git-ignored). */
export function cacheDir(): string {
  return process.env["BULWARK_CACHE_DIR"] ?? path.join(packageRoot, ".cache");
}

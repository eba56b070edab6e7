/**
 * Canonical JSON shared by HGS and its hosts: object keys sorted, undefined members dropped, no
 * whitespace. Baseline ids and audit hashes are computed over it, so both sides must agree.
 */
/** JSON with object keys sorted at every level: the bytes the chain hashes. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== "object") return JSON.stringify(v) ?? "null";
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
    .join(",")}}`;
}

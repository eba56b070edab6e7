/**
 * The request in progress, as the use cases below the HTTP server need to know it: where it came
 * from, and the per-source limits the server applies. The server runs each handler inside
 * `ctx.requests.run(info, …)` (an AsyncLocalStorage owned by the context, so two HGS instances in
 * one process share nothing); the nonce book reads it to cap outstanding nonces per source and
 * the audit writer to aggregate refusals of unauthenticated callers per source. Outside a request
 * (the CLI, use cases called in-process) there is no scope: nonces are capped only in total and
 * every refusal gets its own audit entry.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { isIPv4, isIPv6 } from "node:net";

export interface RequestInfo {
  /** The caller's source (see {@link sourceOf}). */
  readonly source: string;
  /** Unused, unexpired nonces one source may hold at once. */
  readonly noncesPerSource: number;
}

export type RequestScope = AsyncLocalStorage<RequestInfo>;

export function newRequestScope(): RequestScope {
  return new AsyncLocalStorage<RequestInfo>();
}

/**
 * The unit limits are counted in: an IPv4 address (also when it arrives IPv4-mapped), or the /64
 * prefix of an IPv6 address (one subscriber usually holds a whole /64, so per-address limits
 * would be free to multiply).
 */
export function sourceOf(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped?.[1]) return mapped[1];
  if (isIPv4(ip)) return ip;
  if (!isIPv6(ip)) return ip.slice(0, 64);
  const [head = "", tail = ""] = ip.split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = ip.includes("::")
    ? [...left, ...Array<string>(8 - left.length - right.length).fill("0"), ...right]
    : left;
  return `${groups
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(":")}::/64`;
}

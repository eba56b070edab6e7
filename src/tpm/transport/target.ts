/**
 * Parses a tpm2-tools TCTI-like target string into a transport (and its control channel):
 *   swtpm:host=127.0.0.1,port=2321      swtpm command port (control port defaults to port+1)
 *   swtpm:path=/run/swtpm.sock          swtpm command channel on a UNIX socket
 *   mssim:host=127.0.0.1,port=2321      Microsoft/IBM simulator (platform port = port+1)
 *   device:/dev/tpmrm0                  Linux TPM device (also `device` alone)
 * This module only builds objects; nothing connects until the first command.
 */
import { tpmError } from "../errors.js";
import { DeviceTransport } from "./device.js";
import { MssimPlatform, MssimTransport } from "./mssim.js";
import { SwtpmControl, SwtpmTransport } from "./swtpm.js";
import type { Transport } from "./transport.js";

export interface Target {
  readonly transport: Transport;
  /** Power-on/_TPM_Init for simulators; undefined for devices. */
  readonly powerOn?: () => Promise<void>;
}

function kv(spec: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const part of spec.split(",")) {
    if (!part) continue;
    const eq = part.indexOf("=");
    if (eq < 0) throw tpmError("TPM_ERR_INVALID_TARGET", `expected key=value, got '${part}'`);
    m.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return m;
}

function port(v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0 || n > 65535)
    throw tpmError("TPM_ERR_INVALID_TARGET", `bad port '${v}'`);
  return n;
}

export function parseTarget(spec: string): Target {
  const colon = spec.indexOf(":");
  const kind = colon < 0 ? spec : spec.slice(0, colon);
  const rest = colon < 0 ? "" : spec.slice(colon + 1);
  switch (kind) {
    case "device": {
      return { transport: new DeviceTransport(rest || "/dev/tpmrm0") };
    }
    case "swtpm": {
      const o = kv(rest);
      const path = o.get("path");
      if (path) {
        const ctrl = o.get("ctrl");
        return {
          transport: new SwtpmTransport({ path }),
          ...(ctrl ? { powerOn: () => new SwtpmControl({ path: ctrl }).init() } : {}),
        };
      }
      const host = o.get("host") ?? "127.0.0.1";
      const p = port(o.get("port"), 2321);
      const ctrl = port(o.get("ctrl"), p + 1);
      return {
        transport: new SwtpmTransport({ host, port: p }),
        powerOn: () => new SwtpmControl({ host, port: ctrl }).init(),
      };
    }
    case "mssim": {
      const o = kv(rest);
      const host = o.get("host") ?? "127.0.0.1";
      const p = port(o.get("port"), 2321);
      const platform = port(o.get("platform"), p + 1);
      return {
        transport: new MssimTransport({ host, port: p }),
        powerOn: () => new MssimPlatform({ host, port: platform }).powerOn(),
      };
    }
    default:
      throw tpmError("TPM_ERR_INVALID_TARGET", `unknown TPM target kind '${kind}'`);
  }
}

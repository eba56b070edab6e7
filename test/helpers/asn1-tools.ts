/**
 * Test helpers for the ASN.1 / Authenticode tests: run a real tool (openssl, sbsign, sbverify,
 * sbvarsign) and fail loudly with the Debian package when it is missing; temporary directories;
 * DER for hand-made test input.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  AsnBooleanConverter,
  AsnIntegerBigIntConverter,
  AsnObjectIdentifierConverter,
  AsnUtf8StringConverter,
  OctetString,
} from "@peculiar/asn1-schema";
import { encodeDer } from "../../src/asn1/schema.js";

const PACKAGES: Record<string, string> = {
  openssl: "openssl",
  sbsign: "sbsigntool",
  sbverify: "sbsigntool",
  sbvarsign: "sbsigntool",
  "dpkg-deb": "dpkg",
  "apt-get": "apt",
};

export interface ToolResult {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `cmd`; a missing binary throws with the Debian package to install. */
export function tool(
  cmd: string,
  args: readonly string[],
  opts: { input?: Uint8Array; cwd?: string } = {},
): ToolResult {
  const r = spawnSync(cmd, args, {
    input: opts.input,
    cwd: opts.cwd,
    encoding: "utf8",
    maxBuffer: 256 << 20,
  });
  if (r.error) {
    const pkg = PACKAGES[cmd] ?? cmd;
    throw new Error(`${cmd} is required for this test: apt-get install ${pkg} (${r.error.message})`);
  }
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Like {@link tool} but a non-zero exit throws with the tool's output. */
export function toolOk(
  cmd: string,
  args: readonly string[],
  opts: { input?: Uint8Array; cwd?: string } = {},
): ToolResult {
  const r = tool(cmd, args, opts);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.status}:\n${r.stdout}${r.stderr}`);
  return r;
}

/** A fresh temporary directory and its cleanup. */
export function tempDir(prefix = "bulwark-asn1-"): {
  dir: string;
  file: (name: string) => string;
  cleanup: () => void;
} {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return {
    dir,
    file: (name) => path.join(dir, name),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * DER for tests that need shapes no schema declares (malformed or hand-assembled input): leaves
 * come from @peculiar/asn1-schema's converters, constructed elements from {@link tlv}.
 */
export const derOf = {
  integer: (v: bigint | number): Uint8Array => encodeDer(AsnIntegerBigIntConverter.toASN(BigInt(v))),
  oid: (dotted: string): Uint8Array => encodeDer(AsnObjectIdentifierConverter.toASN(dotted)),
  octetString: (b: Uint8Array): Uint8Array => encodeDer(new OctetString(b)),
  utf8: (s: string): Uint8Array => encodeDer(AsnUtf8StringConverter.toASN(s)),
  boolean: (v: boolean): Uint8Array => encodeDer(AsnBooleanConverter.toASN(v)),
  null: (): Uint8Array => Uint8Array.of(0x05, 0x00),
  sequence: (...items: Uint8Array[]): Uint8Array => tlv(0x30, ...items),
  /** [n] EXPLICIT around complete elements. */
  explicit: (n: number, ...items: Uint8Array[]): Uint8Array => tlv(0xa0 | n, ...items),
};

/** One element from its identifier octet (tag number < 31) and its contents' parts (definite length). */
export function tlv(tag: number, ...parts: Uint8Array[]): Uint8Array {
  const content = Buffer.concat(parts);
  const n = content.length;
  const len =
    n < 0x80
      ? [n]
      : (() => {
          const bytes: number[] = [];
          for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
          return [0x80 | bytes.length, ...bytes];
        })();
  return new Uint8Array(Buffer.concat([Uint8Array.of(tag, ...len), content]));
}

/**
 * Runs tpm2-tools' `tpm2_eventlog` on a log file and reads the YAML it prints: per event the
 * number, PCR, type name, digests and size, plus its replayed `pcrs:` section. A line-oriented
 * reader of exactly the fields the tests compare (tpm2-tools 5.x layout), not a YAML parser.
 */
import { spawnSync } from "node:child_process";
import { requireTool } from "./eventlog-ovmf.js";

export interface ToolEvent {
  num: number | null;
  pcr: number;
  type: string;
  digests: { alg: string; digest: string }[];
  size: number;
}

export interface ToolLog {
  events: ToolEvent[];
  pcrs: Record<string, Record<number, string>>;
  yaml: string;
}

export function runTpm2Eventlog(file: string): ToolLog {
  requireTool("tpm2_eventlog");
  const r = spawnSync("tpm2_eventlog", [file], { encoding: "utf8", maxBuffer: 256 << 20 });
  if (r.status !== 0) throw new Error(`tpm2_eventlog ${file} failed (${r.status}): ${r.stderr}`);
  return parseTpm2EventlogYaml(r.stdout);
}

export function parseTpm2EventlogYaml(yaml: string): ToolLog {
  const events: ToolEvent[] = [];
  const pcrs: Record<string, Record<number, string>> = {};
  let cur: ToolEvent | null = null;
  let pendingNum: number | null = null;
  let inPcrs = false;
  let bank: string | null = null;
  let lastAlg: string | null = null;
  for (const line of yaml.split("\n")) {
    if (line === "pcrs:") {
      inPcrs = true;
      continue;
    }
    if (inPcrs) {
      const b = /^ {2}(\w+):$/.exec(line);
      if (b) bank = b[1]!;
      const v = /^ {4}(\d+)\s*: 0x([0-9a-fA-F]+)$/.exec(line);
      if (v && bank) (pcrs[bank] ??= {})[Number(v[1])] = v[2]!.toLowerCase();
      continue;
    }
    let m: RegExpExecArray | null;
    if ((m = /^- EventNum: (\d+)$/.exec(line))) {
      pendingNum = Number(m[1]);
      continue;
    }
    if ((m = /^ {2}PCRIndex: (\d+)$/.exec(line))) {
      cur = { num: pendingNum, pcr: Number(m[1]), type: "", digests: [], size: -1 };
      pendingNum = null;
      events.push(cur);
      continue;
    }
    if (!cur) continue;
    if ((m = /^ {2}EventType: (\S+)$/.exec(line))) cur.type = m[1]!;
    else if ((m = /^ {2}Digest: "([0-9a-f]*)"$/.exec(line))) cur.digests.push({ alg: "sha1", digest: m[1]! });
    else if ((m = /^ {2}- AlgorithmId: (\S+)$/.exec(line))) lastAlg = m[1]!;
    else if ((m = /^ {4}Digest: "([0-9a-f]*)"$/.exec(line)) && lastAlg) {
      cur.digests.push({ alg: lastAlg, digest: m[1]! });
      lastAlg = null;
    } else if ((m = /^ {2}EventSize: (\d+)$/.exec(line))) cur.size = Number(m[1]);
  }
  return { events, pcrs, yaml };
}

/**
 * The verdict on an event log: replay compared with the TPM's PCR values, then policy checks
 * that rest only on proven facts (STYLE.md habit 7: verdicts, not booleans).
 *
 * What binds what:
 *   TPM PCR value (trusted only once a quote over it verifies — the caller's job, see src/tpm)
 *     ← replay of the log's digests equals it            (finding `pcr-mismatch` otherwise)
 *       ← a fact's digest equals the hash of its data     (facts.ts / proof.ts)
 * A fact counts only when both links hold for its PCR; {@link EventLogVerdict.boundPcrs} names the
 * PCRs whose replay matched in every compared bank.
 *
 * Not checked here: the quote's signature and nonce (src/tpm), whether the PCR values are fresh,
 * baselines of expected digests (the Host Guardian Service compares facts with its policy), the
 * content of images (only their digests are in the log), DRTM PCRs 17..22.
 */
import { verdictOf, type Finding, type Severity, type Verdict } from "../core/verdict.js";
import { EventType } from "./event-types.js";
import { extractFacts, FactMemo, type EventLogFacts, type Evidence } from "./facts.js";
import type { EventLog } from "./parse.js";
import type { PcrValues } from "./pcr-values.js";
import { replayEventLog, type Replay } from "./replay.js";
import { firstApplicationIndex, NO_SEPARATORS_QUIRK, quirkById, type QuirkUse } from "./quirks.js";
import { bytesEqual, toHex } from "../core/bytes.js";

/** A finding on an event log: the core {@link Finding} plus where in the log it was made. */
export interface EventLogFinding extends Finding {
  readonly expected: string;
  readonly got: string;
  readonly bank?: string;
  readonly pcr?: number;
  readonly event?: number;
}

export interface EventLogPolicy {
  /** PCR values the TPM reports (ideally from a verified quote); replay must equal each one. */
  readonly pcrs?: PcrValues;
  /** Require a proven, bound SecureBoot=1 measurement in PCR 7. */
  readonly requireSecureBoot?: boolean;
  /** PCRs that must carry a normal EV_SEPARATOR (default 0..7, PFP 1.05 section 3.3.4.1). */
  readonly separatorPcrs?: readonly number[];
}

export interface EventLogVerdict extends Verdict<EventLogFinding> {
  readonly replay: Replay;
  readonly facts: EventLogFacts;
  /** PCRs whose replay equals the given PCR values in every compared bank (and at least one). */
  readonly boundPcrs: readonly number[];
  /** Every firmware/shim quirk (quirks.ts) the judgement went through; each also a `quirk.<id>` finding. */
  readonly quirks: readonly QuirkUse[];
}

/**
 * Event types whose data the specification says the digest covers (PFP 1.05 section 10.4.4),
 * with the severity of a mismatch: an error where Secure Boot decisions read the data (PCR 7
 * configuration and authorities, separators, EFI actions), a warning where firmware is known to
 * vary (CRTM version strings, boot variables, GPT) — facts from such events stay unproven anyway.
 */
const DATA_HASHED = new Map<number, Severity>([
  [EventType.EV_SEPARATOR, "error"],
  [EventType.EV_EFI_ACTION, "error"],
  [EventType.EV_ACTION, "warning"],
  [EventType.EV_EFI_VARIABLE_DRIVER_CONFIG, "error"],
  [EventType.EV_EFI_VARIABLE_AUTHORITY, "error"],
  [EventType.EV_EFI_VARIABLE_BOOT, "warning"],
  [EventType.EV_EFI_VARIABLE_BOOT2, "warning"],
  [EventType.EV_EFI_GPT_EVENT, "warning"],
  [EventType.EV_S_CRTM_VERSION, "warning"],
]);

/** Compares the replay with PCR values; returns findings and the PCRs bound in every compared bank. */
export function comparePcrs(
  replay: Replay,
  pcrs: PcrValues,
): { findings: EventLogFinding[]; boundPcrs: number[] } {
  const findings: EventLogFinding[] = [];
  const good = new Map<number, boolean>();
  for (const [bank, values] of pcrs) {
    const b = replay.banks.find((x) => x.bank === bank);
    if (!b || !b.supported) {
      findings.push({
        id: b ? "bank-unsupported" : "bank-absent",
        severity: "error",
        expected: `a ${bank} bank in the log`,
        got: b
          ? `${bank} cannot be hashed on this host`
          : `banks ${replay.banks.map((x) => x.bank).join(", ")}`,
        message: `the log cannot be replayed for the ${bank} bank`,
        bank,
      });
      for (const pcr of values.keys()) good.set(pcr, false);
      continue;
    }
    if (b.missingDigests.length > 0) {
      findings.push({
        id: "bank-incomplete",
        severity: "error",
        expected: `a ${bank} digest in every extended event`,
        got: `events ${b.missingDigests.slice(0, 10).join(", ")} have none`,
        message: `the ${bank} replay is incomplete`,
        bank,
      });
    }
    for (const [pcr, value] of values) {
      const got = b.pcrs.get(pcr);
      const ok = got !== undefined && b.missingDigests.length === 0 && bytesEqual(got, value);
      good.set(pcr, (good.get(pcr) ?? true) && ok);
      if (!ok) {
        findings.push({
          id: "pcr-mismatch",
          severity: "error",
          expected: toHex(value),
          got: got ? toHex(got) : "(none)",
          message: `${bank} PCR ${pcr}: the log's replay differs from the TPM's value`,
          bank,
          pcr,
        });
      }
    }
  }
  const boundPcrs = [...good]
    .filter(([, ok]) => ok)
    .map(([pcr]) => pcr)
    .sort((a, b) => a - b);
  return { findings, boundPcrs };
}

/** True when the fact's digest proves it and its PCR is bound to the TPM. */
export function isBound(fact: Evidence, boundPcrs: readonly number[]): boolean {
  return fact.proof.proven && boundPcrs.includes(fact.pcr);
}

/**
 * Replays, compares, extracts facts and applies the policy. Pure. `memo` carries proofs and
 * certificate descriptions between the steps, and between logs when the caller keeps one.
 */
export function verifyEventLog(
  log: EventLog,
  policy: EventLogPolicy = {},
  memo: FactMemo = new FactMemo(),
): EventLogVerdict {
  const replay = replayEventLog(log);
  const facts = extractFacts(log, memo);
  const findings: EventLogFinding[] = [];
  let boundPcrs: number[] = [];
  if (policy.pcrs) {
    const c = comparePcrs(replay, policy.pcrs);
    findings.push(...c.findings);
    boundPcrs = c.boundPcrs;
  } else {
    findings.push({
      id: "pcrs-not-compared",
      severity: "warning",
      expected: "PCR values from the TPM",
      got: "none given",
      message: "the log was not compared with PCR values; no fact is bound to the TPM",
    });
  }

  const first = firstApplicationIndex(log.events);
  for (const e of log.events) {
    const severity = DATA_HASHED.get(e.eventType);
    if (!severity) continue;
    const p = memo.proof(e, first);
    if (!p.proven && e.digests.length > p.uncheckedBanks.length) {
      findings.push({
        id: "event-data-mismatch",
        severity,
        expected: `digest = hash of the ${e.typeName} data`,
        got: "no digest matches the event data",
        message: `event ${e.index} (${e.typeName}, PCR ${e.pcrIndex}): its data is not what was measured`,
        pcr: e.pcrIndex,
        event: e.index,
      });
    }
  }

  const separatorPcrs = policy.separatorPcrs ?? [0, 1, 2, 3, 4, 5, 6, 7];
  const noEarlySeparators = lacksEarlySeparators(facts, separatorPcrs);
  for (const pcr of separatorPcrs) {
    if (noEarlySeparators && pcr <= 6) continue; // judged below, as the named quirk
    const seps = facts.separators.filter((s) => s.pcr === pcr);
    if (seps.length === 0) {
      findings.push({
        id: "separator-missing",
        severity: "error",
        expected: `an EV_SEPARATOR in PCR ${pcr}`,
        got: "none",
        message: `PCR ${pcr} has no separator: the pre-OS phase did not end as the specification requires`,
        pcr,
      });
    }
    for (const s of seps) {
      if (s.kind !== "normal" || !s.proof.proven) {
        findings.push({
          id: "separator-error",
          severity: "error",
          expected: "00000000 (proven)",
          got: `${s.value}${s.proof.proven ? "" : " (unproven)"}`,
          message: `PCR ${pcr}: separator signals a firmware error or does not match its digest`,
          pcr,
          event: s.event,
        });
      }
    }
  }

  if (policy.requireSecureBoot) {
    const sb = facts.secureBoot;
    if (!sb) {
      findings.push({
        id: "secure-boot-unproven",
        severity: "error",
        expected: "SecureBoot=1 measured in PCR 7",
        got: "no SecureBoot measurement",
        message: "the log does not measure the SecureBoot variable",
        pcr: 7,
      });
    } else if (!sb.proof.proven || !boundPcrs.includes(7)) {
      findings.push({
        id: "secure-boot-unproven",
        severity: "error",
        expected: "SecureBoot measurement proven by its digest and PCR 7 bound to the TPM",
        got: !sb.proof.proven ? sb.proof.note : "PCR 7 not bound to TPM values",
        message: "Secure Boot state cannot be relied on",
        pcr: 7,
        event: sb.event,
      });
    } else if (!sb.enabled) {
      findings.push({
        id: "secure-boot-disabled",
        severity: "error",
        expected: "SecureBoot=1",
        got: "SecureBoot=0",
        message: "the firmware booted with Secure Boot disabled",
        pcr: 7,
        event: sb.event,
      });
    }
  }

  for (const a of facts.authorities) {
    if (!a.proof.proven) {
      findings.push({
        id: "authority-unproven",
        severity: "warning",
        expected: "EV_EFI_VARIABLE_AUTHORITY data matching its digest",
        got: a.proof.note,
        message: `authority from ${a.variable} (event ${a.event}) is not proven`,
        pcr: a.pcr,
        event: a.event,
      });
    }
  }

  const quirks = quirkUses(log, facts, memo, noEarlySeparators);
  for (const q of quirks) {
    findings.push({
      id: `quirk.${q.id}`,
      severity: q.severity,
      expected: "the strict reading of the TCG PC Client Platform Firmware Profile",
      got: q.events.length
        ? `events ${q.events.join(", ")} (PCR ${q.pcrs.join(", ")}) read through quirk ${q.id}`
        : `PCRs ${q.pcrs.join(", ")} judged through quirk ${q.id}`,
      message: `firmware/shim quirk ${q.id}: ${q.assumes}`,
    });
  }

  // A check passed when it ran and made no finding of its own (warnings included).
  const failed = new Set(findings.map((f) => f.id));
  const passedIf = (check: string, ran: boolean, ...ids: string[]): string[] =>
    ran && !ids.some((id) => failed.has(id)) ? [check] : [];
  const passed = [
    ...passedIf(
      "pcr-values",
      policy.pcrs !== undefined,
      "bank-absent",
      "bank-unsupported",
      "bank-incomplete",
      "pcr-mismatch",
    ),
    ...passedIf("event-data", true, "event-data-mismatch"),
    ...passedIf("separators", !noEarlySeparators, "separator-missing", "separator-error"),
    ...passedIf(
      "secure-boot",
      policy.requireSecureBoot === true,
      "secure-boot-unproven",
      "secure-boot-disabled",
    ),
    ...passedIf("authorities", true, "authority-unproven"),
  ];
  return { ...verdictOf(findings, passed), replay, facts, boundPcrs, quirks };
}

/**
 * The separator quirk (quirks.ts {@link NO_SEPARATORS_QUIRK}): PCRs 0–6 are all required, none
 * of them has any EV_SEPARATOR, and PCR 7 has a normal one proven by its digest.
 */
function lacksEarlySeparators(facts: EventLogFacts, separatorPcrs: readonly number[]): boolean {
  const early = [0, 1, 2, 3, 4, 5, 6];
  if (!early.every((p) => separatorPcrs.includes(p))) return false;
  if (facts.separators.some((s) => s.pcr <= 6)) return false;
  return facts.separators.some((s) => s.pcr === 7 && s.kind === "normal" && s.proof.proven);
}

/**
 * Every quirk the log was read through: digest quirks from the proofs, reading quirks from the
 * facts, and the separator quirk when `noEarlySeparators`. In the order of quirks.ts.
 */
export function quirkUses(
  log: EventLog,
  facts: EventLogFacts,
  memo: FactMemo = new FactMemo(),
  noEarlySeparators = lacksEarlySeparators(facts, [0, 1, 2, 3, 4, 5, 6, 7]),
): QuirkUse[] {
  const first = firstApplicationIndex(log.events);
  const byId = new Map<string, { pcrs: Set<number>; events: number[] }>();
  const use = (id: string, pcr: number, event?: number) => {
    let u = byId.get(id);
    if (!u) byId.set(id, (u = { pcrs: new Set(), events: [] }));
    u.pcrs.add(pcr);
    if (event !== undefined && !u.events.includes(event)) u.events.push(event);
  };
  for (const e of log.events) {
    const q = memo.proof(e, first).quirk;
    if (q) use(q, e.pcrIndex, e.index);
  }
  for (const f of [...facts.bootApplications, ...facts.drivers]) if (f.quirk) use(f.quirk, f.pcr, f.event);
  if (noEarlySeparators) for (const p of [0, 1, 2, 3, 4, 5, 6]) use(NO_SEPARATORS_QUIRK.id, p);
  return [...byId].map(([id, u]) => {
    const info = quirkById(id);
    return {
      id,
      severity: info?.severity ?? "warning",
      pcrs: [...u.pcrs].sort((a, b) => a - b),
      events: u.events.sort((a, b) => a - b),
      assumes: info?.assumes ?? "",
    };
  });
}

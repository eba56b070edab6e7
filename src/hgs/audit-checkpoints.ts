/**
 * Signed audit checkpoints: the anchor that makes the hash chain's tail and its past
 * tamper-evident to someone who does not trust the database.
 *
 * The chain alone (audit.ts) proves only that the rows link: whoever can write the table can
 * remove its tail, empty it, or rewrite an entry and re-hash everything after it, and the result
 * still links. A checkpoint is (seq, hash, at) signed with this fabric's attestation signer and
 * kept OUTSIDE the database, in `DIR/audit-checkpoints.json` (written with io/atomic.ts), and
 * handed to anyone who asks (`GET /audit/v1/checkpoints`, `bulwark hgs audit checkpoints`).
 * `verifyAuditChain` then proves every checkpoint is in the chain at its seq with its hash and
 * that the chain goes on from it: a removed tail, an emptied table and a rewritten entry each
 * break a checkpoint (`audit.truncated`, `audit.emptied`, `audit.rewritten`).
 *
 * When: at `hgs init` (entry #1), after every {@link CHECKPOINT_EVERY_ENTRIES} entries a node
 * commits, every {@link CHECKPOINT_EVERY_MS} while a server runs if the head moved, and when a
 * process that opened the HGS closes (server shutdown, every `bulwark hgs` verb). A checkpoint is
 * signed only after the chain from the previous one to the new head was re-linked: a node never
 * signs a head that does not extend what it signed before (a tampered table gets no new
 * checkpoints; the diagnostics channel {@link CHECKPOINT_CHANNEL} says why).
 *
 * Several writers: the nodes of one fabric each keep their own file in their own copy of the
 * directory; every checkpoint names a (seq, hash) of the shared chain, so any node's checkpoints
 * verify against it (and `verify --checkpoints FILE` takes another node's export). Workers of one
 * node share the file: each write is the union of the file and the writer's own checkpoints, so a
 * write that races another can delay a checkpoint but the next write of its author restores it.
 *
 * What it does not do: entries newer than the newest checkpoint are only as safe as the chain
 * (until the next checkpoint); whoever holds the HGS directory holds the signing key and can
 * forge checkpoints too (copies held elsewhere — an auditor's export — are what stop that).
 * The file keeps at most {@link MAX_CHECKPOINTS}: the newest half all, the older ones thinned.
 */
import diagnostics_channel from "node:diagnostics_channel";
import { sign, verify, type KeyObject } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { hgsError } from "../attest/errors.js";
import { canonicalJson } from "../attest/json.js";
import { writeFileAtomic } from "../io/atomic.js";
import { entryHashOfText, GENESIS } from "./audit-chain.js";
import type { Tables } from "./store/repo.js";

export const CHECKPOINTS_FILE = "audit-checkpoints.json";
export const CHECKPOINTS_FORMAT = "bulwark-hgs-audit-checkpoints/v1";
const SIGNED_TYPE = "bulwark-hgs-audit-checkpoint/v1";
export const CHECKPOINT_EVERY_ENTRIES = 10_000;
export const CHECKPOINT_EVERY_MS = 60_000;
export const MAX_CHECKPOINTS = 1024;
/** A checkpoint file larger than this is refused unread (1024 checkpoints take ~250 KiB). */
const MAX_FILE_BYTES = 4 * 1024 * 1024;
export const CHECKPOINT_CHANNEL = "bulwark:hgs:audit-checkpoint";

/** One signed head of the chain. */
export interface AuditCheckpoint {
  readonly seq: number;
  readonly hash: string;
  /** When it was signed (ms since the epoch). */
  readonly at: number;
  /** ECDSA P-256/SHA-256 (IEEE P1363, base64) over {@link checkpointMessage}. */
  readonly signature: string;
}

/** The file, and what the route and the export verb hand out. */
export interface CheckpointsDocument {
  readonly format: typeof CHECKPOINTS_FORMAT;
  readonly signerId: string;
  readonly checkpoints: readonly AuditCheckpoint[];
}

/** The key that signs (and checks) checkpoints: the fabric's attestation signer. */
export interface CheckpointSigner {
  readonly key?: KeyObject;
  readonly publicKey: KeyObject;
  readonly id: string;
}

/** What a checkpoint's signature covers: canonical JSON binding it to this fabric's signer. */
export function checkpointMessage(signerId: string, c: Omit<AuditCheckpoint, "signature">): Buffer {
  return Buffer.from(
    canonicalJson({ type: SIGNED_TYPE, signerId, seq: c.seq, hash: c.hash, at: c.at }),
    "utf8",
  );
}

export function signCheckpoint(
  signer: CheckpointSigner & { readonly key: KeyObject },
  head: { readonly seq: number; readonly hash: string },
  at: number,
): AuditCheckpoint {
  const signature = sign("sha256", checkpointMessage(signer.id, { ...head, at }), {
    key: signer.key,
    dsaEncoding: "ieee-p1363",
  }).toString("base64");
  return { seq: head.seq, hash: head.hash, at, signature };
}

export function checkpointSignatureValid(signer: CheckpointSigner, c: AuditCheckpoint): boolean {
  try {
    return verify(
      "sha256",
      checkpointMessage(signer.id, c),
      { key: signer.publicKey, dsaEncoding: "ieee-p1363" },
      Buffer.from(c.signature, "base64"),
    );
  } catch {
    return false;
  }
}

const HASH = /^[0-9a-f]{64}$/;

function invalid(what: string, message: string): never {
  throw hgsError("HGS_ERR_INVALID", `${what}: ${message}`, { finding: "audit.checkpoints-unreadable" });
}

/**
 * Reads a checkpoints document (the file, an export); total and bounded: anything else is
 * HGS_ERR_INVALID naming what is wrong. Signatures are not checked here (verify does that).
 */
export function parseCheckpoints(text: string, what = "the audit checkpoints"): CheckpointsDocument {
  if (text.length > MAX_FILE_BYTES) invalid(what, "too large");
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    invalid(what, "not JSON");
  }
  const o = v as Partial<Record<keyof CheckpointsDocument, unknown>> | null;
  if (typeof o !== "object" || o === null || Array.isArray(o)) invalid(what, "not a JSON object");
  if (o.format !== CHECKPOINTS_FORMAT) invalid(what, `format is not ${CHECKPOINTS_FORMAT}`);
  if (typeof o.signerId !== "string" || o.signerId.length > 256) invalid(what, "signerId missing");
  if (!Array.isArray(o.checkpoints) || o.checkpoints.length > 4 * MAX_CHECKPOINTS)
    invalid(what, "checkpoints must be a bounded array");
  const checkpoints = o.checkpoints.map((c: unknown, i): AuditCheckpoint => {
    const x = c as Partial<Record<keyof AuditCheckpoint, unknown>> | null;
    if (
      typeof x !== "object" ||
      x === null ||
      !Number.isSafeInteger(x.seq) ||
      (x.seq as number) < 1 ||
      typeof x.hash !== "string" ||
      !HASH.test(x.hash) ||
      !Number.isSafeInteger(x.at) ||
      typeof x.signature !== "string" ||
      x.signature.length > 512
    )
      invalid(what, `checkpoint ${i} is not {seq, hash, at, signature}`);
    return { seq: x.seq as number, hash: x.hash, at: x.at as number, signature: x.signature };
  });
  return { format: CHECKPOINTS_FORMAT, signerId: o.signerId, checkpoints };
}

export function checkpointsPath(dir: string): string {
  return path.join(dir, CHECKPOINTS_FILE);
}

/** The directory's checkpoints (none when the file does not exist yet). */
export function readCheckpointsFile(dir: string): readonly AuditCheckpoint[] {
  const file = checkpointsPath(dir);
  if (!existsSync(file)) return [];
  return parseCheckpoints(readFileSync(file, "utf8"), file).checkpoints;
}

/** {@link readCheckpointsFile} parsed again only when the file changed (the public route reads it often). */
class CheckpointsFileCache {
  private seen: { key: string; checkpoints: readonly AuditCheckpoint[] } | undefined;

  constructor(private readonly dir: string) {}

  read(): readonly AuditCheckpoint[] {
    let key: string;
    try {
      const st = statSync(checkpointsPath(this.dir));
      key = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      return readCheckpointsFile(this.dir);
    }
    if (this.seen?.key !== key) this.seen = { key, checkpoints: readCheckpointsFile(this.dir) };
    return this.seen.checkpoints;
  }
}

const keyOf = (c: AuditCheckpoint) => `${c.seq}:${c.hash}:${c.at}`;

/**
 * Union by (seq, hash, at), ordered by seq then time, at most {@link MAX_CHECKPOINTS}: the newest
 * half kept whole, every other one of the older ones dropped until it fits (old history stays
 * covered, more sparsely). Deterministic, so two workers merging the same sets agree.
 */
export function mergeCheckpoints(...lists: (readonly AuditCheckpoint[])[]): AuditCheckpoint[] {
  const all = new Map<string, AuditCheckpoint>();
  for (const l of lists) for (const c of l) all.set(keyOf(c), c);
  let out = [...all.values()].sort((a, b) => a.seq - b.seq || a.at - b.at);
  while (out.length > MAX_CHECKPOINTS) {
    const keepNewest = MAX_CHECKPOINTS / 2;
    const older = out.slice(0, out.length - keepNewest);
    out = [...older.filter((_, i) => i % 2 === 0), ...out.slice(out.length - keepNewest)];
  }
  return out;
}

/** The signed checkpoints kept outside the database, and the signer they must be signed by. */
export interface AuditAnchors {
  readonly signer: CheckpointSigner;
  readonly checkpoints: readonly AuditCheckpoint[];
  /** Why the checkpoint file could not be read, when it could not. */
  readonly unreadable?: string;
}

export interface CheckpointMessage {
  readonly taken: boolean;
  readonly seq: number;
  /** Why no checkpoint was taken: the chain does not extend the newest one, or the file is unreadable. */
  readonly reason?: "not-extended" | "unreadable" | "write-failed" | "failed";
  readonly detail?: string;
}

const channel = diagnostics_channel.channel(CHECKPOINT_CHANNEL);

function publish(m: CheckpointMessage): void {
  if (channel.hasSubscribers) channel.publish(m);
}

/**
 * Does the chain, as stored now, go from `from` (a checkpoint) to `to` (the head)? Re-links and
 * re-hashes the entries between them; a page at a time.
 */
async function extendsFrom(
  repo: Tables,
  from: { seq: number; hash: string } | undefined,
  to: { seq: number; hash: string },
): Promise<string | undefined> {
  let prev = GENESIS;
  let after = 0;
  if (from) {
    if (to.seq < from.seq) return `the chain ends at #${to.seq}, before checkpoint #${from.seq}`;
    const at = (await repo.auditAfter(from.seq - 1, 1))[0];
    if (at?.seq !== from.seq || at.hash !== from.hash)
      return `entry #${from.seq} is not the one checkpointed`;
    prev = from.hash;
    after = from.seq;
  }
  while (after < to.seq) {
    const rows = await repo.auditAfter(after, 1000);
    if (rows.length === 0) return `entries after #${after} are missing`;
    for (const r of rows) {
      if (r.seq > to.seq) break;
      if (r.seq !== after + 1 || r.prevHash !== prev) return `entry #${r.seq} does not link`;
      // Over the stored text as it is: the writer stores and hashes the canonical form only.
      if (entryHashOfText(prev, r, r.detail) !== r.hash) return `entry #${r.seq} does not hash`;
      prev = r.hash;
      after = r.seq;
    }
  }
  return prev === to.hash ? undefined : `entry #${to.seq} is not the head read`;
}

/**
 * Takes this node's checkpoints (see the module comment for when). One per context; takes are
 * serialised; failures never reach the request path (they are published on the channel).
 */
export class AuditCheckpointer {
  private own: AuditCheckpoint[] = [];
  private sinceLast = 0;
  private running: Promise<CheckpointMessage> = Promise.resolve({ taken: false, seq: 0 });
  private timer: NodeJS.Timeout | undefined;
  private readonly file: CheckpointsFileCache;

  constructor(
    private readonly repo: Tables,
    private readonly signer: CheckpointSigner & { readonly key: KeyObject },
    private readonly dir: string,
    private readonly everyEntries = CHECKPOINT_EVERY_ENTRIES,
  ) {
    this.file = new CheckpointsFileCache(dir);
  }

  /** The AuditWriter reports committed entries; every `everyEntries` starts a checkpoint. */
  committed(n: number): void {
    this.sinceLast += n;
    if (this.sinceLast >= this.everyEntries) {
      this.sinceLast = 0;
      void this.take();
    }
  }

  /** Checkpoints every `intervalMs` while started (a server); the timer does not hold the process. */
  start(intervalMs = CHECKPOINT_EVERY_MS): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.take(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Checkpoints the current head when it moved since the newest checkpoint; serialised. */
  take(): Promise<CheckpointMessage> {
    const next = this.running.then(() =>
      this.takeNow().catch((e: unknown) => {
        const m: CheckpointMessage = { taken: false, seq: 0, reason: "failed", detail: (e as Error).message };
        publish(m);
        return m;
      }),
    );
    this.running = next.catch(() => ({ taken: false, seq: 0 }));
    return next;
  }

  private async takeNow(): Promise<CheckpointMessage> {
    let onFile: readonly AuditCheckpoint[];
    try {
      onFile = readCheckpointsFile(this.dir);
    } catch (e) {
      // Never overwrite a file we cannot read: it may be the only evidence left.
      const m: CheckpointMessage = {
        taken: false,
        seq: 0,
        reason: "unreadable",
        detail: (e as Error).message,
      };
      publish(m);
      return m;
    }
    const known = mergeCheckpoints(onFile, this.own).filter((c) => checkpointSignatureValid(this.signer, c));
    const newest = known.at(-1);
    const head = await this.repo.auditHead();
    if (!head) {
      const m: CheckpointMessage = newest
        ? { taken: false, seq: 0, reason: "not-extended", detail: "the audit table is empty" }
        : { taken: false, seq: 0 };
      if (m.reason) publish(m);
      return m;
    }
    if (newest && newest.seq === head.seq && newest.hash === head.hash)
      return { taken: false, seq: head.seq };
    const broken = await extendsFrom(this.repo, newest, head);
    if (broken !== undefined) {
      const m: CheckpointMessage = { taken: false, seq: head.seq, reason: "not-extended", detail: broken };
      publish(m);
      return m;
    }
    const c = signCheckpoint(this.signer, head, Date.now());
    this.own = mergeCheckpoints(this.own, [c]).slice(-64);
    const doc: CheckpointsDocument = {
      format: CHECKPOINTS_FORMAT,
      signerId: this.signer.id,
      checkpoints: mergeCheckpoints(onFile, this.own),
    };
    try {
      await writeFileAtomic(checkpointsPath(this.dir), `${JSON.stringify(doc, null, 1)}\n`, 0o644);
    } catch (e) {
      const m: CheckpointMessage = {
        taken: false,
        seq: head.seq,
        reason: "write-failed",
        detail: (e as Error).message,
      };
      publish(m);
      return m;
    }
    const m: CheckpointMessage = { taken: true, seq: head.seq };
    publish(m);
    return m;
  }

  /** What verify proves against: the checkpoints on file and this process's own, or why they cannot be read. */
  anchors(): AuditAnchors {
    try {
      return { signer: this.signer, checkpoints: this.document().checkpoints };
    } catch (e) {
      return { signer: this.signer, checkpoints: this.own, unreadable: (e as Error).message };
    }
  }

  /** The document the route and the export verb hand out: the file merged with what is pending. */
  document(): CheckpointsDocument {
    return {
      format: CHECKPOINTS_FORMAT,
      signerId: this.signer.id,
      checkpoints: mergeCheckpoints(this.file.read(), this.own),
    };
  }
}

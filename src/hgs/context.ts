/**
 * The HGS context: what every use case (attestation, key release, administration) works over —
 * the directory's keys, the repository, the attestation signer, the audit writer, the nonce book
 * and the caches. The HTTP routes and the CLI's `hgs` verbs build one with {@link openHgs} (or
 * {@link initHgs}) and pass it down; nothing is module-level, so two HGS instances in one process
 * (two tests, two fabrics) share no state.
 */
import { createPublicKey, type KeyObject } from "node:crypto";
import { BoundedMap } from "../core/memo.js";
import { ProtectorMemo } from "../protector/key-protector.js";
import { QuoteVerifier } from "../tpm/verify/quote.js";
import type { PublicArea } from "../tpm/structures.js";
import { guardianThumbprint } from "../protector/guardian.js";
import { hgsError } from "../attest/errors.js";
import { HealthVerifier, signerId } from "../attest/health.js";
import { PublicKeyCache } from "../attest/host-key.js";
import { POLICIES } from "../attest/policies.js";
import { EventLogJudge } from "../attest/tpm-judge.js";
import { appendAudit, AuditWriter } from "./audit.js";
import { AuditCheckpointer } from "./audit-checkpoints.js";
import { BaselineSet } from "./baseline-set.js";
import {
  hashCredential,
  loadDirectory,
  type HgsDirectory,
  stageDirectory,
  type InitOptions,
} from "./directory.js";
import { NonceBook } from "./nonces.js";
import { newRequestScope, type RequestScope } from "./request-scope.js";
import { DEFAULT_SETTINGS } from "./settings.js";
import { openDriver, parseDbSpec } from "./store/driver.js";
import { HgsRepo } from "./store/repo.js";

/** The key that signs health certificates, with its public half and id precomputed (hot path). */
export interface HgsSigner {
  readonly key: KeyObject;
  readonly publicKey: KeyObject;
  readonly id: string;
}

/**
 * Memo tables of pure results, owned by one context. They exist for speed (bench/hgs-load):
 * hosts send the same keys, certificates, AKs and boot logs again and again.
 */
export interface HgsCaches {
  /** KeyObjects by SPKI DER (host keys, key-release keys). */
  readonly keys: PublicKeyCache;
  /** Health certificates whose signature verified. */
  readonly health: HealthVerifier;
  /** Event-log judgements by (log, quoted PCRs, policy states). */
  readonly eventLogs: EventLogJudge;
  /** Decoded AK public areas by their TPM2B_PUBLIC bytes (base64). */
  readonly akAreas: BoundedMap<string, PublicArea>;
  /** AK KeyObjects and attribute verdicts by AK bytes (quote checks); baselines are in `eventLogs`. */
  readonly quotes: QuoteVerifier;
  /** Owner signatures and guardian certificates already checked, guardian public points (releases). */
  readonly protector: ProtectorMemo;
}

export interface HgsContext {
  readonly dir: HgsDirectory;
  readonly repo: HgsRepo;
  readonly signer: HgsSigner;
  readonly guardianThumbprint: string;
  /** Group-committed audit appends for the hot path. */
  readonly audit: AuditWriter;
  readonly nonces: NonceBook;
  /** Signed audit checkpoints kept in the directory (audit-checkpoints.ts). */
  readonly checkpoints: AuditCheckpointer;
  /** The HTTP request in progress, as the server declares it (request-scope.ts). */
  readonly requests: RequestScope;
  readonly caches: HgsCaches;
  /** The registered baselines, parsed once per change of the table (baseline-set.ts). */
  readonly baselines: BaselineSet;
  /** Drains the audit queue, checkpoints the head if it moved, and closes the store. */
  close(): Promise<void>;
}

function newCaches(): HgsCaches {
  const keys = new PublicKeyCache();
  return {
    keys,
    health: new HealthVerifier(keys),
    eventLogs: new EventLogJudge(),
    akAreas: new BoundedMap(10_000),
    quotes: new QuoteVerifier(),
    protector: new ProtectorMemo(),
  };
}

function contextOf(dir: HgsDirectory, repo: HgsRepo): HgsContext {
  const publicKey = createPublicKey(dir.attestationSigner);
  const signer = { key: dir.attestationSigner, publicKey, id: signerId(publicKey) };
  const requests = newRequestScope();
  const checkpoints = new AuditCheckpointer(repo, signer, dir.dir);
  const audit = new AuditWriter(repo, { scope: requests, committed: (n) => checkpoints.committed(n) });
  return {
    dir,
    repo,
    signer,
    guardianThumbprint: guardianThumbprint(dir.guardian),
    audit,
    nonces: new NonceBook(repo, requests),
    checkpoints,
    requests,
    caches: newCaches(),
    baselines: new BaselineSet(repo),
    async close() {
      checkpoints.stop();
      await audit.drain();
      await checkpoints.take().catch(() => undefined);
      await repo.close();
    },
  };
}

const BAD_DB = "--db must be sqlite:PATH or postgres://…";

/** Opens an initialised HGS directory and its database (migrating the schema when needed). */
export async function openHgs(dirPath: string, dbOverride?: string): Promise<HgsContext> {
  const dir = loadDirectory(dirPath);
  const spec = dbOverride ? parseDbSpec(dbOverride) : dir.db;
  if (!spec) throw hgsError("HGS_ERR_CONFIG", BAD_DB);
  const repo = new HgsRepo(await openDriver(spec));
  try {
    await repo.migrate();
    if ((await repo.signerId()) === undefined)
      throw hgsError("HGS_ERR_CONFIG", "the database was never initialised by `bulwark hgs init`");
  } catch (e) {
    await repo.close();
    throw e;
  }
  return contextOf(dir, repo);
}

/**
 * `bulwark hgs init`: creates the directory (keys, TLS, admin credential file) and initialises
 * the database, all or nothing (directory.ts `stageDirectory`): the files are staged, the
 * database initialised, then the files committed; on any failure what this init wrote is
 * removed. A database already initialised by another fabric is refused.
 */
export async function initHgs(
  dirPath: string,
  opts: InitOptions = {},
): Promise<{ ctx: HgsContext; adminCredential: string; adminCredentialFile: string }> {
  if (opts.db && !parseDbSpec(opts.db)) throw hgsError("HGS_ERR_CONFIG", BAD_DB);
  const created = stageDirectory(dirPath, opts);
  let repo: HgsRepo | undefined;
  try {
    repo = new HgsRepo(await openDriver(created.dir.db));
    await repo.migrate();
    await repo.transaction(async (tx) => {
      if ((await tx.signerId()) !== undefined) {
        throw hgsError(
          "HGS_ERR_EXISTS",
          "this database already belongs to an HGS fabric; copy that fabric's directory instead",
        );
      }
      const svcSigner = signerId(createPublicKey(created.dir.attestationSigner));
      await tx.insertSignerId(svcSigner);
      await tx.insertSettings(DEFAULT_SETTINGS);
      await tx.insertAdminCredential("initial", hashCredential(created.adminCredential), Date.now());
      for (const p of POLICIES)
        await tx.insertPolicy({ id: p.id, enabled: p.enabledByDefault, locked: p.locked });
      await appendAudit(tx, "config.changed", null, {
        init: true,
        signerId: svcSigner,
        guardian: guardianThumbprint(created.dir.guardian),
      });
    });
    created.commit();
  } catch (e) {
    await repo?.close().catch(() => undefined);
    created.abort();
    throw e;
  }
  const ctx = contextOf(created.dir, repo);
  // Entry #1 is anchored from the start: a chain rewritten from its genesis is then detected.
  await ctx.checkpoints.take();
  return {
    ctx,
    adminCredential: created.adminCredential,
    adminCredentialFile: created.adminCredentialFile,
  };
}

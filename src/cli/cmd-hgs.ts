/**
 * `bulwark hgs …`: the Host Guardian Service. `init` and `serve` run the service; the other
 * verbs administer it directly through the directory's database (the same operations as the
 * admin API, for the operator on an HGS node).
 */
import { readFileSync } from "node:fs";
import { Exit } from "../core/errors.js";
import * as admin from "../hgs/admin.js";
import { verifyAuditChain } from "../hgs/audit.js";
import { parseCheckpoints } from "../hgs/audit-checkpoints.js";
import { initHgs, openHgs, type HgsContext } from "../hgs/context.js";
import { isLogLevel, LOG_LEVELS } from "../hgs/log.js";
import { printableName } from "../hgs/names.js";
import { MAX_WORKERS, serve } from "../hgs/serve.js";
import { DEFAULT_SOURCE_LIMITS } from "../hgs/http/rate-limit.js";
import { HgsErrors } from "../attest/errors.js";
import { writeFileAtomicSync } from "../io/atomic.js";
import { parse, printJson, usageError } from "./args.js";

const help = `Usage: bulwark hgs <verb> --dir DIR [options] [--json]

Service
  init --dir DIR [--db sqlite:PATH|postgres://…] [--listen HOST:PORT] [--tls-name NAME]…
                              create keys (HGS guardian, attestation signer, TLS) and the database,
                              all or nothing; DIR is made 0700 (an existing DIR open to other users
                              is refused); the admin credential is written once to
                              DIR/admin-credential (0600)
  serve --dir DIR [--listen HOST:PORT] [--db URL] [--workers N] [--log-level LEVEL]
        [--nonces-per-source N]
                              HTTPS service (admin API + host API, GET /openapi.json,
                              GET /metrics); N processes share the socket and the database;
                              JSON log lines on stderr (LEVEL: ${LOG_LEVELS.join("|")}, default info);
                              N: unused challenges one source may hold (default ${DEFAULT_SOURCE_LIMITS.noncesPerSource})
Administration (on an HGS node, through DIR's database)
  mode show | mode set key|tpm                     attestation mode (one at a time, as in Hyper-V)
  settings show | settings set [--health-lifetime SECONDS] [--nonce-ttl SECONDS]
                 [--deny-before ISO-DATE|now|none] [--require-ek-cert true|false]
  host list | host add-key --name N --public-key FILE
  host add-tpm --name N --ek-public FILE [--ek-cert FILE]   (TPM2B_PUBLIC or PEM; DER/PEM cert)
                              names: 1..256 printable characters, NFC; no controls, bidi or
                              invisible characters (HGS_ERR_INVALID_NAME)
  host revoke ID | host restore ID                 restore: certificates issued before it stay refused
  tpm-root add FILE                                 trusted TPM manufacturer root (PEM/DER)
  baseline add FILE | baseline list | baseline remove ID
  policy list | policy enable ID | policy disable ID
  guardian export [--out FILE]                      the HGS guardian's certificates (PEM) for
                                                    \`bulwark guardian import\` / key protectors
  audit list [--after SEQ]
  audit verify [--head HASH] [--checkpoints FILE]
                              recompute the hash chain and prove every signed checkpoint (DIR's,
                              plus an exported FILE) is in it; HASH may be any earlier head
  audit checkpoints           the signed checkpoints (JSON with --json: the export for FILE)`;

function need(v: string | undefined, what: string): string {
  if (!v) throw usageError(`missing ${what}`);
  return v;
}

async function withContext<T>(
  dir: string,
  db: string | undefined,
  fn: (ctx: HgsContext) => Promise<T>,
): Promise<T> {
  const ctx = await openHgs(dir, db);
  try {
    return await fn(ctx);
  } finally {
    await ctx.close();
  }
}

function out(json: boolean, value: unknown, textLine: string): void {
  if (json) printJson(value);
  else process.stdout.write(`${textLine}\n`);
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    dir: { type: "string" },
    db: { type: "string" },
    listen: { type: "string" },
    workers: { type: "string" },
    "log-level": { type: "string" },
    "nonces-per-source": { type: "string" },
    "tls-name": { type: "string", multiple: true },
    name: { type: "string" },
    "public-key": { type: "string" },
    "ek-public": { type: "string" },
    "ek-cert": { type: "string" },
    out: { type: "string" },
    after: { type: "string" },
    head: { type: "string" },
    checkpoints: { type: "string" },
    "health-lifetime": { type: "string" },
    "nonce-ttl": { type: "string" },
    "deny-before": { type: "string" },
    "require-ek-cert": { type: "string" },
  });
  const [verb, sub, arg] = positionals;
  if (values.help || !verb) {
    process.stdout.write(`${help}\n`);
    return values.help ? Exit.ok : Exit.usage;
  }
  const json = values.json === true;
  const dir = need(values.dir, "--dir DIR");

  switch (verb) {
    case "init": {
      const r = await initHgs(dir, {
        ...(values.db ? { db: values.db } : {}),
        ...(values.listen ? { listen: values.listen } : {}),
        ...(values["tls-name"] ? { tlsNames: values["tls-name"] } : {}),
      });
      const info = {
        dir: r.ctx.dir.dir,
        db: r.ctx.dir.config.db.startsWith("sqlite:") ? r.ctx.dir.config.db : "postgres (URL in hgs.json)",
        listen: r.ctx.dir.config.listen,
        signerId: r.ctx.signer.id,
        guardianThumbprint: r.ctx.guardianThumbprint,
        adminCredentialFile: r.adminCredentialFile,
      };
      await r.ctx.close();
      out(
        json,
        info,
        `initialised HGS in ${info.dir}\n  guardian ${info.guardianThumbprint}\n  attestation signer ${info.signerId}\n  admin credential written to ${info.adminCredentialFile} (mode 0600; keep it secret)`,
      );
      return Exit.ok;
    }
    case "serve": {
      const workers = Number(values.workers ?? 1);
      if (!Number.isInteger(workers) || workers < 1 || workers > MAX_WORKERS)
        throw usageError(`--workers takes 1..${MAX_WORKERS}`);
      const logLevel = values["log-level"] ?? "info";
      if (!isLogLevel(logLevel)) throw usageError(`--log-level takes ${LOG_LEVELS.join(", ")}`);
      const perSource = values["nonces-per-source"];
      const noncesPerSource = Number(perSource);
      if (
        perSource !== undefined &&
        (!Number.isInteger(noncesPerSource) || noncesPerSource < 1 || noncesPerSource > 1_000_000)
      )
        throw usageError("--nonces-per-source takes 1..1000000");
      const node = await serve({
        dir,
        workers,
        logLevel,
        ...(perSource !== undefined ? { limits: { noncesPerSource } } : {}),
        ...(values.listen ? { listen: values.listen } : {}),
        ...(values.db ? { db: values.db } : {}),
      });
      if (!node.isWorker) {
        const many = node.workers > 1;
        out(
          json,
          { listening: node.url, pid: process.pid, ...(many ? { workers: node.workers } : {}) },
          `HGS listening on ${node.url}${many ? ` (${node.workers} workers)` : ""}`,
        );
      }
      return node.stopped;
    }
    case "mode":
      return withContext(dir, values.db, async (ctx) => {
        if (sub === "set") {
          const mode = need(arg, "key|tpm");
          if (mode !== "key" && mode !== "tpm") throw usageError("mode is key or tpm");
          const r = await admin.updateSettings(ctx, { mode });
          out(json, r, `attestation mode: ${r.mode}`);
        } else {
          const r = await admin.readSettings(ctx);
          out(json, { mode: r.mode }, `attestation mode: ${r.mode}`);
        }
        return Exit.ok;
      });
    case "settings":
      return withContext(dir, values.db, async (ctx) => {
        if (sub === "set") {
          const patch: Record<string, unknown> = {};
          if (values["health-lifetime"])
            patch.healthCertificateLifetimeSeconds = Number(values["health-lifetime"]);
          if (values["nonce-ttl"]) patch.nonceTtlSeconds = Number(values["nonce-ttl"]);
          if (values["require-ek-cert"]) patch.requireEkCertificate = values["require-ek-cert"] === "true";
          const d = values["deny-before"];
          if (d) {
            const t = d === "now" ? Date.now() : d === "none" ? 0 : Date.parse(d);
            if (Number.isNaN(t)) throw usageError("--deny-before takes an ISO date, now or none");
            patch.denyBefore = t;
          }
          if (Object.keys(patch).length === 0) throw usageError("settings set needs at least one option");
          const r = await admin.updateSettings(ctx, patch);
          out(json, r, JSON.stringify(r, null, 2));
        } else {
          const r = await admin.readSettings(ctx);
          out(json, r, JSON.stringify(r, null, 2));
        }
        return Exit.ok;
      });
    case "host":
      return withContext(dir, values.db, async (ctx) => {
        switch (sub) {
          case "list": {
            const hosts = await admin.listHosts(ctx);
            out(
              json,
              hosts,
              hosts
                .map(
                  (h) =>
                    `${h.id}  ${h.kind.padEnd(3)}  ${h.revokedAt ? "REVOKED" : "active "}  ${printableName(h.name)}`,
                )
                .join("\n") || "(no hosts)",
            );
            return Exit.ok;
          }
          case "add-key": {
            const h = await admin.addKeyHost(
              ctx,
              need(values.name, "--name"),
              readFileSync(need(values["public-key"], "--public-key FILE"), "utf8"),
            );
            out(json, h, `registered host ${printableName(h.name)}: ${h.id}`);
            return Exit.ok;
          }
          case "add-tpm": {
            const ek = readFileSync(need(values["ek-public"], "--ek-public FILE"));
            const cert = values["ek-cert"] ? readFileSync(values["ek-cert"]) : undefined;
            const h = await admin.addTpmHost(ctx, need(values.name, "--name"), ek, cert);
            out(json, h, `registered TPM host ${printableName(h.name)}: ${h.id}`);
            return Exit.ok;
          }
          case "revoke":
          case "restore": {
            const h = await admin.setRevoked(ctx, need(arg, "host ID"), sub === "revoke");
            out(json, h, `${sub === "revoke" ? "revoked" : "restored"} host ${h.id}`);
            return Exit.ok;
          }
          default:
            throw usageError("host list | add-key | add-tpm | revoke ID | restore ID");
        }
      });
    case "tpm-root":
      return withContext(dir, values.db, async (ctx) => {
        if (sub !== "add") throw usageError("tpm-root add FILE");
        const r = await admin.addTpmRoot(ctx, readFileSync(need(arg, "FILE")));
        out(json, r, `trusted TPM root ${r.fingerprint} (${r.subject})`);
        return Exit.ok;
      });
    case "baseline":
      return withContext(dir, values.db, async (ctx) => {
        switch (sub) {
          case "add": {
            const r = await admin.addBaseline(ctx, readFileSync(need(arg, "FILE"), "utf8"));
            out(
              json,
              r,
              `registered ${r.baseline.kind} baseline '${printableName(r.baseline.name)}': ${r.id}`,
            );
            return Exit.ok;
          }
          case "list": {
            const all = await admin.listBaselines(ctx);
            out(
              json,
              all,
              all
                .map((b) => `${b.id}  ${b.baseline.kind.padEnd(13)}  ${printableName(b.baseline.name)}`)
                .join("\n") || "(no baselines)",
            );
            return Exit.ok;
          }
          case "remove":
            await admin.removeBaseline(ctx, need(arg, "baseline ID"));
            out(json, { removed: arg }, `removed baseline ${arg}`);
            return Exit.ok;
          default:
            throw usageError("baseline add FILE | list | remove ID");
        }
      });
    case "policy":
      return withContext(dir, values.db, async (ctx) => {
        if (sub === "enable" || sub === "disable") {
          await admin.setPolicy(ctx, need(arg, "policy ID"), sub === "enable");
          out(json, { id: arg, enabled: sub === "enable" }, `${arg}: ${sub}d`);
          return Exit.ok;
        }
        const all = await admin.listPolicies(ctx);
        out(
          json,
          all,
          all
            .map(
              (p) =>
                `${p.id.padEnd(26)} ${p.enabled ? "enabled " : "disabled"} ${p.locked ? "locked" : "      "}  ${p.summary}`,
            )
            .join("\n"),
        );
        return Exit.ok;
      });
    case "guardian": {
      if (sub !== "export") throw usageError("guardian export [--out FILE]");
      const s = await openHgs(dir, values.db);
      const pem = s.dir.guardianPublicPem;
      await s.close();
      if (values.out) writeFileAtomicSync(values.out, pem, 0o644);
      else process.stdout.write(pem);
      return Exit.ok;
    }
    case "audit":
      return withContext(dir, values.db, async (ctx) => {
        if (sub === "checkpoints") {
          const doc = {
            ...ctx.checkpoints.document(),
            signerCertificate: ctx.dir.attestationSignerCertificatePem,
          };
          out(
            json,
            doc,
            doc.checkpoints.map((c) => `${c.seq}\t${new Date(c.at).toISOString()}\t${c.hash}`).join("\n"),
          );
          return Exit.ok;
        }
        if (sub === "verify") {
          const own = ctx.checkpoints.anchors();
          const extra = values.checkpoints
            ? parseCheckpoints(readFileSync(values.checkpoints, "utf8"), values.checkpoints).checkpoints
            : [];
          const v = await verifyAuditChain(ctx.repo, values.head, {
            ...own,
            checkpoints: [...own.checkpoints, ...extra],
          });
          if (v.ok) {
            const anchored =
              v.anchoredAt !== undefined
                ? `; ${v.checkpoints} signed checkpoint(s) in the chain, newest at #${v.anchoredAt}`
                : "; no signed checkpoint";
            const head = v.headAt !== undefined ? `; head ${values.head} found at #${v.headAt}` : "";
            out(json, v, `audit chain intact: ${v.entries} entries, head ${v.head}${anchored}${head}`);
            return Exit.ok;
          }
          // The verdict goes to stdout like an intact one (scripts read it); the exit status is the code's.
          out(
            json,
            v,
            `AUDIT CHAIN BROKEN:\n${v.findings
              .filter((f) => f.severity === "error")
              .map((f) => `  #${f.seq} ${f.id}: ${f.message} (expected ${f.expected}, got ${f.got})`)
              .join("\n")}`,
          );
          return HgsErrors.HGS_ERR_AUDIT_BROKEN.exit;
        }
        if (sub !== undefined && sub !== "list")
          throw usageError(
            "audit list | audit verify [--head HASH] [--checkpoints FILE] | audit checkpoints",
          );
        const entries = await admin.listAuditEntries(ctx, Number(values.after ?? 0));
        out(
          json,
          entries,
          entries
            .map(
              (e) =>
                `${e.seq}\t${new Date(e.at).toISOString()}\t${e.event}\t${e.hostId ?? "-"}\t${JSON.stringify(e.detail)}`,
            )
            .join("\n"),
        );
        return Exit.ok;
      });
    default:
      throw usageError(`unknown hgs verb '${verb}'`);
  }
}

/**
 * `bulwark hgs …`: the Host Guardian Service. `init` and `serve` run the service; the other
 * verbs administer it directly through the directory's database (the same operations as the
 * admin API, for the operator on an HGS node).
 */
import { readFileSync } from "node:fs";
import { Exit } from "../core/errors.js";
import { HgsService } from "../hgs/service.js";
import { isLogLevel, LOG_LEVELS } from "../hgs/log.js";
import { MAX_WORKERS, serve } from "../hgs/serve.js";
import { writeFileAtomicSync } from "../io/atomic.js";
import { parse, printJson, usageError } from "./args.js";

const help = `Usage: bulwark hgs <verb> --dir DIR [options] [--json]

Service
  init --dir DIR [--db sqlite:PATH|postgres://…] [--listen HOST:PORT] [--tls-name NAME]…
                              create keys (HGS guardian, attestation signer, TLS) and the database;
                              the admin credential is written once to DIR/admin-credential (0600)
  serve --dir DIR [--listen HOST:PORT] [--db URL] [--workers N] [--log-level LEVEL]
                              HTTPS service (admin API + host API, GET /openapi.json,
                              GET /metrics); N processes share the socket and the database;
                              JSON log lines on stderr (LEVEL: ${LOG_LEVELS.join("|")}, default info)
Administration (on an HGS node, through DIR's database)
  mode show | mode set key|tpm                     attestation mode (one at a time, as in Hyper-V)
  settings show | settings set [--health-lifetime SECONDS] [--nonce-ttl SECONDS]
                 [--deny-before ISO-DATE|now|none] [--require-ek-cert true|false]
  host list | host add-key --name N --public-key FILE
  host add-tpm --name N --ek-public FILE [--ek-cert FILE]   (TPM2B_PUBLIC or PEM; DER/PEM cert)
  host revoke ID | host restore ID
  tpm-root add FILE                                 trusted TPM manufacturer root (PEM/DER)
  baseline add FILE | baseline list | baseline remove ID
  policy list | policy enable ID | policy disable ID
  guardian export [--out FILE]                      the HGS guardian's certificates (PEM) for
                                                    \`bulwark guardian import\` / key protectors
  audit list [--after SEQ] | audit verify [--head HASH]`;

function need(v: string | undefined, what: string): string {
  if (!v) throw usageError(`missing ${what}`);
  return v;
}

async function withService<T>(
  dir: string,
  db: string | undefined,
  fn: (s: HgsService) => Promise<T>,
): Promise<T> {
  const svc = await HgsService.open(dir, db);
  try {
    return await fn(svc);
  } finally {
    await svc.close();
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
    "tls-name": { type: "string", multiple: true },
    name: { type: "string" },
    "public-key": { type: "string" },
    "ek-public": { type: "string" },
    "ek-cert": { type: "string" },
    out: { type: "string" },
    after: { type: "string" },
    head: { type: "string" },
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
      const r = await HgsService.init(dir, {
        ...(values.db ? { db: values.db } : {}),
        ...(values.listen ? { listen: values.listen } : {}),
        ...(values["tls-name"] ? { tlsNames: values["tls-name"] } : {}),
      });
      const info = {
        dir: r.service.dir.dir,
        db: r.service.dir.config.db.startsWith("sqlite:")
          ? r.service.dir.config.db
          : "postgres (URL in hgs.json)",
        listen: r.service.dir.config.listen,
        signerId: r.service.signerId,
        guardianThumbprint: r.service.guardianThumbprint,
        adminCredentialFile: r.adminCredentialFile,
      };
      await r.service.close();
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
      const node = await serve({
        dir,
        workers,
        logLevel,
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
      return withService(dir, values.db, async (s) => {
        if (sub === "set") {
          const mode = need(arg, "key|tpm");
          if (mode !== "key" && mode !== "tpm") throw usageError("mode is key or tpm");
          const r = await s.updateSettings({ mode });
          out(json, r, `attestation mode: ${r.mode}`);
        } else {
          const r = await s.settings();
          out(json, { mode: r.mode }, `attestation mode: ${r.mode}`);
        }
        return Exit.ok;
      });
    case "settings":
      return withService(dir, values.db, async (s) => {
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
          const r = await s.updateSettings(patch);
          out(json, r, JSON.stringify(r, null, 2));
        } else {
          const r = await s.settings();
          out(json, r, JSON.stringify(r, null, 2));
        }
        return Exit.ok;
      });
    case "host":
      return withService(dir, values.db, async (s) => {
        switch (sub) {
          case "list": {
            const hosts = await s.hosts();
            out(
              json,
              hosts,
              hosts
                .map((h) => `${h.id}  ${h.kind.padEnd(3)}  ${h.revokedAt ? "REVOKED" : "active "}  ${h.name}`)
                .join("\n") || "(no hosts)",
            );
            return Exit.ok;
          }
          case "add-key": {
            const h = await s.addKeyHost(
              need(values.name, "--name"),
              readFileSync(need(values["public-key"], "--public-key FILE"), "utf8"),
            );
            out(json, h, `registered host ${h.name}: ${h.id}`);
            return Exit.ok;
          }
          case "add-tpm": {
            const ek = readFileSync(need(values["ek-public"], "--ek-public FILE"));
            const cert = values["ek-cert"] ? readFileSync(values["ek-cert"]) : undefined;
            const h = await s.addTpmHost(need(values.name, "--name"), ek, cert);
            out(json, h, `registered TPM host ${h.name}: ${h.id}`);
            return Exit.ok;
          }
          case "revoke":
          case "restore": {
            const h = await s.setRevoked(need(arg, "host ID"), sub === "revoke");
            out(json, h, `${sub === "revoke" ? "revoked" : "restored"} host ${h.id}`);
            return Exit.ok;
          }
          default:
            throw usageError("host list | add-key | add-tpm | revoke ID | restore ID");
        }
      });
    case "tpm-root":
      return withService(dir, values.db, async (s) => {
        if (sub !== "add") throw usageError("tpm-root add FILE");
        const r = await s.addTpmRoot(readFileSync(need(arg, "FILE")));
        out(json, r, `trusted TPM root ${r.fingerprint} (${r.subject})`);
        return Exit.ok;
      });
    case "baseline":
      return withService(dir, values.db, async (s) => {
        switch (sub) {
          case "add": {
            const r = await s.addBaseline(readFileSync(need(arg, "FILE"), "utf8"));
            out(json, r, `registered ${r.baseline.kind} baseline '${r.baseline.name}': ${r.id}`);
            return Exit.ok;
          }
          case "list": {
            const all = await s.baselines();
            out(
              json,
              all,
              all.map((b) => `${b.id}  ${b.baseline.kind.padEnd(13)}  ${b.baseline.name}`).join("\n") ||
                "(no baselines)",
            );
            return Exit.ok;
          }
          case "remove":
            await s.removeBaseline(need(arg, "baseline ID"));
            out(json, { removed: arg }, `removed baseline ${arg}`);
            return Exit.ok;
          default:
            throw usageError("baseline add FILE | list | remove ID");
        }
      });
    case "policy":
      return withService(dir, values.db, async (s) => {
        if (sub === "enable" || sub === "disable") {
          await s.setPolicy(need(arg, "policy ID"), sub === "enable");
          out(json, { id: arg, enabled: sub === "enable" }, `${arg}: ${sub}d`);
          return Exit.ok;
        }
        const all = await s.policies();
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
      const s = await HgsService.open(dir, values.db);
      const pem = s.dir.guardianPublicPem;
      await s.close();
      if (values.out) writeFileAtomicSync(values.out, pem, 0o644);
      else process.stdout.write(pem);
      return Exit.ok;
    }
    case "audit":
      return withService(dir, values.db, async (s) => {
        if (sub === "verify") {
          const v = await s.verifyAudit(values.head);
          out(
            json,
            v,
            v.ok
              ? `audit chain intact: ${v.entries} entries, head ${v.head}`
              : `AUDIT CHAIN BROKEN:\n${v.findings.map((f) => `  #${f.seq} ${f.id}: expected ${f.expected}, got ${f.got}`).join("\n")}`,
          );
          return v.ok ? Exit.ok : Exit.refused;
        }
        const entries = await s.audit(Number(values.after ?? 0));
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

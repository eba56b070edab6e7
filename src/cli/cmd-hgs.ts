/**
 * `bulwark hgs …`: the Host Guardian Service. `init` and `serve` run the service; the other
 * verbs administer it directly through the directory's database (the same operations as the
 * admin API, for the operator on an HGS node).
 */
import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import * as admin from "../hgs/admin.js";
import type { AuditVerdict } from "../hgs/audit.js";
import { initHgs, openHgs, type HgsContext } from "../hgs/context.js";
import { hgsError, HgsErrors, isHgsError } from "../attest/errors.js";
import { writeFileAtomicSync } from "../io/atomic.js";
import { parse, printJson, usageError } from "./args.js";

const help = `Usage: bulwark hgs <verb> --dir DIR [options] [--json]

Service
  init --dir DIR [--db sqlite:PATH|postgres://…] [--listen HOST:PORT] [--tls-name NAME]…
                              create keys (HGS guardian, attestation signer, TLS) and the database;
                              the admin credential is written once to DIR/admin-credential (0600)
  serve --dir DIR [--listen HOST:PORT] [--db URL] [--workers N]
                              HTTPS service (admin API + host API, GET /openapi.json);
                              N processes share the socket and the database
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
    return values.help ? 0 : 2;
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
      return 0;
    }
    case "serve": {
      const workers = Number(values.workers ?? 1);
      if (!Number.isInteger(workers) || workers < 1 || workers > 64)
        throw usageError("--workers takes 1..64");
      return serve(dir, values.listen, values.db, json, workers);
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
        return 0;
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
        return 0;
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
                .map((h) => `${h.id}  ${h.kind.padEnd(3)}  ${h.revokedAt ? "REVOKED" : "active "}  ${h.name}`)
                .join("\n") || "(no hosts)",
            );
            return 0;
          }
          case "add-key": {
            const h = await admin.addKeyHost(
              ctx,
              need(values.name, "--name"),
              readFileSync(need(values["public-key"], "--public-key FILE"), "utf8"),
            );
            out(json, h, `registered host ${h.name}: ${h.id}`);
            return 0;
          }
          case "add-tpm": {
            const ek = readFileSync(need(values["ek-public"], "--ek-public FILE"));
            const cert = values["ek-cert"] ? readFileSync(values["ek-cert"]) : undefined;
            const h = await admin.addTpmHost(ctx, need(values.name, "--name"), ek, cert);
            out(json, h, `registered TPM host ${h.name}: ${h.id}`);
            return 0;
          }
          case "revoke":
          case "restore": {
            const h = await admin.setRevoked(ctx, need(arg, "host ID"), sub === "revoke");
            out(json, h, `${sub === "revoke" ? "revoked" : "restored"} host ${h.id}`);
            return 0;
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
        return 0;
      });
    case "baseline":
      return withContext(dir, values.db, async (ctx) => {
        switch (sub) {
          case "add": {
            const r = await admin.addBaseline(ctx, readFileSync(need(arg, "FILE"), "utf8"));
            out(json, r, `registered ${r.baseline.kind} baseline '${r.baseline.name}': ${r.id}`);
            return 0;
          }
          case "list": {
            const all = await admin.listBaselines(ctx);
            out(
              json,
              all,
              all.map((b) => `${b.id}  ${b.baseline.kind.padEnd(13)}  ${b.baseline.name}`).join("\n") ||
                "(no baselines)",
            );
            return 0;
          }
          case "remove":
            await admin.removeBaseline(ctx, need(arg, "baseline ID"));
            out(json, { removed: arg }, `removed baseline ${arg}`);
            return 0;
          default:
            throw usageError("baseline add FILE | list | remove ID");
        }
      });
    case "policy":
      return withContext(dir, values.db, async (ctx) => {
        if (sub === "enable" || sub === "disable") {
          await admin.setPolicy(ctx, need(arg, "policy ID"), sub === "enable");
          out(json, { id: arg, enabled: sub === "enable" }, `${arg}: ${sub}d`);
          return 0;
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
        return 0;
      });
    case "guardian": {
      if (sub !== "export") throw usageError("guardian export [--out FILE]");
      const s = await openHgs(dir, values.db);
      const pem = s.dir.guardianPublicPem;
      await s.close();
      if (values.out) writeFileAtomicSync(values.out, pem, 0o644);
      else process.stdout.write(pem);
      return 0;
    }
    case "audit":
      return withContext(dir, values.db, async (ctx) => {
        if (sub === "verify") {
          try {
            const v = await admin.verifyAudit(ctx, values.head);
            out(json, v, `audit chain intact: ${v.entries} entries, head ${v.head}`);
            return 0;
          } catch (e) {
            if (!isHgsError(e, "HGS_ERR_AUDIT_BROKEN")) throw e;
            // The verdict goes to stdout like an intact one (scripts read it); the exit status is the code's.
            const v = e.details as unknown as AuditVerdict;
            out(
              json,
              v,
              `AUDIT CHAIN BROKEN:\n${v.findings.map((f) => `  #${f.seq} ${f.id}: expected ${f.expected}, got ${f.got}`).join("\n")}`,
            );
            return HgsErrors.HGS_ERR_AUDIT_BROKEN.exit;
          }
        }
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
        return 0;
      });
    default:
      throw usageError(`unknown hgs verb '${verb}'`);
  }
}

async function serve(
  dir: string,
  listenOpt: string | undefined,
  db: string | undefined,
  json: boolean,
  workers: number,
): Promise<number> {
  const cluster = (await import("node:cluster")).default;
  if (workers > 1 && cluster.isPrimary) return servePrimary(dir, db, json, workers);
  const { buildServer, parseListen } = await import("../hgs/http/server.js");
  const ctx = await openHgs(dir, db);
  const { host, port } = parseListen(listenOpt ?? ctx.dir.config.listen);
  const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  const app = await buildServer(ctx, { version: pkg.version });
  try {
    await app.listen({ host, port });
  } catch (e) {
    await app.close();
    await ctx.close();
    throw hgsError("HGS_ERR_CONFIG", `cannot listen on ${host}:${port}: ${(e as Error).message}`);
  }
  const addr = app.server.address() as AddressInfo;
  const url = `https://${addr.family === "IPv6" ? `[${addr.address}]` : addr.address}:${addr.port}`;
  if (cluster.isWorker) process.send?.({ listening: url });
  else out(json, { listening: url, pid: process.pid }, `HGS listening on ${url}`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    // A worker whose primary is gone stops too.
    process.once("disconnect", stop);
  });
  await app.close();
  await ctx.close();
  return 0;
}

/**
 * `--workers N`: N server processes sharing the listening socket (node:cluster), each with its
 * own connection to the same database; every decision reads the store, so they answer alike.
 */
async function servePrimary(
  dir: string,
  db: string | undefined,
  json: boolean,
  workers: number,
): Promise<number> {
  const cluster = (await import("node:cluster")).default;
  // Migrate once, before the workers open the database.
  await (await openHgs(dir, db)).close();
  const urls: string[] = [];
  const all = Array.from({ length: workers }, () => cluster.fork());
  const exited = all.map(
    (w) => new Promise<number>((resolve) => w.once("exit", (code) => resolve(code ?? 1))),
  );
  try {
    await new Promise<void>((resolve, reject) => {
      for (const w of all) {
        w.on("message", (m: { listening?: string }) => {
          if (m.listening) urls.push(m.listening);
          if (urls.length === workers) resolve();
        });
        w.once("exit", (code) => {
          if (urls.length < workers)
            reject(hgsError("HGS_ERR_CONFIG", `an HGS worker exited with ${code} while starting`));
        });
      }
    });
  } catch (e) {
    for (const w of all) w.kill("SIGTERM");
    await Promise.all(exited);
    throw e;
  }
  out(
    json,
    { listening: urls[0], pid: process.pid, workers },
    `HGS listening on ${urls[0]} (${workers} workers)`,
  );
  await new Promise<void>((resolve) => {
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
  });
  for (const w of all) w.kill("SIGTERM");
  const codes = await Promise.all(exited);
  return codes.every((c) => c === 0) ? 0 : 1;
}

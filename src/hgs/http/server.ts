/**
 * The HGS HTTP(S) server (fastify). Strict request validation (no coercion, no silently
 * dropped properties), per-route body limits, typed error bodies whose status comes from the
 * error catalogue (routes.ts types each handler's input from its TypeBox schemas, so the
 * table needs no type provider on the instance). One JSON log line per request (never a body: bodies carry credentials and
 * keys), and Prometheus metrics on GET /metrics from a registry of this server's own.
 * Per-source limits (rate-limit.ts): a source whose failed requests drained its bucket is
 * answered 429 before anything else; handlers run inside the context's request scope
 * (request-scope.ts) so nonces and refusal audits are counted per source. While the server runs,
 * the context checkpoints the audit chain every minute (audit-checkpoints.ts).
 */
import { randomUUID } from "node:crypto";
import Fastify, { type FastifyError, type FastifyInstance } from "fastify";
import type { Logger } from "pino";
import { isBulwarkError } from "../../core/errors.js";
import { hgsError } from "../../attest/errors.js";
import { checkAdmin } from "../admin.js";
import type { HgsContext } from "../context.js";
import { HgsLogController, logObserver } from "../log.js";
import { HgsMetrics } from "../metrics.js";
import { observed, type Observer } from "../observe.js";
import { openApiDocument } from "./openapi.js";
import { baseRoutes, type RouteDef } from "./routes.js";
import { auditRoutes } from "./audit-routes.js";
import { DEFAULT_SOURCE_LIMITS, FailureLimiter, type SourceLimits } from "./rate-limit.js";
import { httpStatusOf } from "./statuses.js";
import { httpsOptions } from "./tls.js";
import { tpmRoutes } from "./tpm-routes.js";
import { sourceOf } from "../request-scope.js";

export const routes: readonly RouteDef[] = [...baseRoutes, ...tpmRoutes, ...auditRoutes];

export interface ServerOptions {
  /** Serve HTTPS with the directory's TLS identity (default true). */
  readonly tls?: boolean;
  readonly version?: string;
  /** Where request lines and service events go (default: nowhere). */
  readonly logger?: Logger;
  /**
   * What GET /metrics answers (default: this server's registry). Under `--workers`, serve.ts
   * answers with the sum over all workers, whichever worker the scrape reaches.
   */
  readonly exposition?: (own: HgsMetrics) => Promise<string>;
  /** Per-source limits (default {@link DEFAULT_SOURCE_LIMITS}). */
  readonly limits?: Partial<SourceLimits>;
}

export interface HgsServer {
  readonly app: FastifyInstance;
  readonly metrics: HgsMetrics;
}

function errorBody(e: { code: string; message: string; details?: unknown }) {
  return { error: { code: e.code, message: e.message, details: e.details ?? {} } };
}

export async function buildServer(ctx: HgsContext, opts: ServerOptions = {}): Promise<FastifyInstance> {
  return (await buildHgsServer(ctx, opts)).app;
}

export async function buildHgsServer(ctx: HgsContext, opts: ServerOptions = {}): Promise<HgsServer> {
  const tls = opts.tls ?? true;
  const metrics = new HgsMetrics();
  const app = Fastify({
    ...(opts.logger ? { loggerInstance: opts.logger } : { logger: false }),
    logController: new HgsLogController(),
    genReqId: () => randomUUID(),
    bodyLimit: 16 * 1024,
    ...(tls ? { https: httpsOptions(ctx.dir) } : {}),
    ajv: {
      customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false },
    },
    keepAliveTimeout: 10_000,
  }) as unknown as FastifyInstance;

  const limits: SourceLimits = { ...DEFAULT_SOURCE_LIMITS, ...opts.limits };
  const limiter = new FailureLimiter(limits);
  // Requests this server turned away itself: they take no further token.
  const turnedAway = new WeakSet<object>();
  app.addHook("onRequest", async (req, reply) => {
    const source = sourceOf(req.ip);
    const wait = limiter.refusal(source);
    if (wait === undefined) return;
    turnedAway.add(req);
    ctx.audit.rateLimited(source);
    const e = hgsError("HGS_ERR_RATE_LIMITED", "too many failed requests from this source; retry later", {
      finding: "request.rate-limited",
      retryAfterSeconds: wait,
    });
    req.log.debug({ code: e.code, source }, e.message);
    return reply.status(httpStatusOf(e.code)).header("retry-after", String(wait)).send(errorBody(e));
  });
  app.addHook("onResponse", async (req, reply) => {
    metrics.request(req.routeOptions.url, req.method, reply.statusCode, reply.elapsedTime / 1000);
    if (reply.statusCode >= 400 && !turnedAway.has(req)) limiter.failed(sourceOf(req.ip));
  });
  ctx.checkpoints.start();
  app.addHook("onClose", async () => ctx.checkpoints.stop());

  app.setErrorHandler((e: FastifyError, req, reply) => {
    if (isBulwarkError(e)) {
      const status = httpStatusOf(e.code);
      const retry = e.details.retryAfterSeconds;
      if (typeof retry === "number") void reply.header("retry-after", String(retry));
      if (status >= 500) req.log.error({ err: e }, e.message);
      else req.log.info({ code: e.code }, e.message);
      return reply.status(status).send(errorBody(e));
    }
    if (e.validation) {
      const err = hgsError("HGS_ERR_BAD_REQUEST", `invalid request: ${e.message}`, {
        finding: "request.schema",
      });
      req.log.info({ code: err.code }, err.message);
      return reply.status(httpStatusOf(err.code)).send(errorBody(err));
    }
    if (e.code === "FST_ERR_CTP_BODY_TOO_LARGE") {
      const err = hgsError("HGS_ERR_TOO_LARGE", "the request body exceeds this route's limit", {
        finding: "request.too-large",
      });
      req.log.info({ code: err.code }, err.message);
      return reply.status(httpStatusOf(err.code)).send(errorBody(err));
    }
    if (e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500) {
      // Malformed JSON, wrong content type, empty body: all one catalogue code.
      const err = hgsError("HGS_ERR_BAD_REQUEST", `invalid request: ${e.message}`, {
        finding: "request.malformed",
      });
      req.log.info({ code: err.code }, err.message);
      return reply.status(httpStatusOf(err.code)).send(errorBody(err));
    }
    req.log.error({ err: e }, "internal error");
    return reply
      .status(httpStatusOf("CORE_ERR_INTERNAL"))
      .send({ error: { code: "CORE_ERR_INTERNAL", message: "internal error", details: {} } });
  });
  app.setNotFoundHandler((_req, reply) => {
    void reply
      .status(httpStatusOf("HGS_ERR_NOT_FOUND"))
      .send(errorBody(hgsError("HGS_ERR_NOT_FOUND", "no such route")));
  });

  const doc = openApiDocument(routes, opts.version ?? "0");
  app.get("/openapi.json", async () => doc);
  // Aggregate counts and latencies only (no host ids, no URLs), so the scrape needs no
  // credential; docs/hgs.md says how to keep it off the hosts' network if wanted.
  const exposition = opts.exposition ?? ((own: HgsMetrics) => own.exposition());
  app.get("/metrics", async (_req, reply) => reply.type(metrics.contentType).send(await exposition(metrics)));

  for (const r of routes) {
    app.route({
      method: r.method,
      url: r.url,
      bodyLimit: Math.max(r.bodyLimit, 1),
      schema: {
        ...(r.body ? { body: r.body } : {}),
        ...(r.params ? { params: r.params } : {}),
        ...(r.querystring ? { querystring: r.querystring } : {}),
        response: r.response,
      },
      // onRequest runs before the body is read or any schema is checked: an anonymous caller
      // learns nothing about what a valid admin request looks like (issue 11).
      ...(r.admin
        ? {
            onRequest: async (req) => {
              const h = req.headers.authorization;
              await checkAdmin(ctx, h?.startsWith("Bearer ") ? h.slice(7).trim() : undefined);
            },
          }
        : {}),
      handler: async (req, reply) => {
        const observers: Observer[] = [metrics, ...(opts.logger ? [logObserver(req.log)] : [])];
        const request = { source: sourceOf(req.ip), noncesPerSource: limits.noncesPerSource };
        const res = await ctx.requests.run(request, () =>
          observed(observers, () => r.handler(ctx, { body: req.body, params: req.params, query: req.query })),
        );
        return reply.status(res.status ?? 200).send(res.body);
      },
    });
  }
  await app.ready();
  return { app, metrics };
}

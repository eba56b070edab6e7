/**
 * The HGS HTTP(S) server (fastify). Strict request validation (no coercion, no silently
 * dropped properties), per-route body limits, typed error bodies whose status comes from the
 * error catalogue. Request logging is off: bodies carry credentials and keys.
 */
import Fastify, { type FastifyInstance, type FastifyError } from "fastify";
import { isBulwarkError } from "../../core/errors.js";
import { specFor } from "../../catalogue.js";
import { hgsError } from "../../attest/errors.js";
import { checkAdmin } from "../admin.js";
import type { HgsContext } from "../context.js";
import { openApiDocument } from "./openapi.js";
import { baseRoutes, type RouteDef } from "./routes.js";
import { tpmRoutes } from "./tpm-routes.js";

export const routes: readonly RouteDef[] = [...baseRoutes, ...tpmRoutes];

export interface ServerOptions {
  /** Serve HTTPS with the directory's TLS identity (default true). */
  readonly tls?: boolean;
  readonly version?: string;
}

function errorBody(e: { code: string; message: string; details?: unknown }) {
  return { error: { code: e.code, message: e.message, details: e.details ?? {} } };
}

export async function buildServer(ctx: HgsContext, opts: ServerOptions = {}): Promise<FastifyInstance> {
  const tls = opts.tls ?? true;
  const app = Fastify({
    logger: false,
    bodyLimit: 16 * 1024,
    ...(tls ? { https: { key: ctx.dir.tlsKeyPem, cert: ctx.dir.tlsCertPem } } : {}),
    ajv: {
      customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false },
    },
    keepAliveTimeout: 10_000,
  }) as unknown as FastifyInstance;

  const statusOf = (code: string) => specFor(code)?.http ?? 500;
  app.setErrorHandler((e: FastifyError, _req, reply) => {
    if (isBulwarkError(e)) return reply.status(statusOf(e.code)).send(errorBody(e));
    if (e.validation) {
      const err = hgsError("HGS_ERR_BAD_REQUEST", `invalid request: ${e.message}`, {
        finding: "request.schema",
      });
      return reply.status(statusOf(err.code)).send(errorBody(err));
    }
    if (e.code === "FST_ERR_CTP_BODY_TOO_LARGE") {
      const err = hgsError("HGS_ERR_TOO_LARGE", "the request body exceeds this route's limit", {
        finding: "request.too-large",
      });
      return reply.status(statusOf(err.code)).send(errorBody(err));
    }
    if (e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500) {
      // Malformed JSON, wrong content type, empty body: all one catalogue code.
      const err = hgsError("HGS_ERR_BAD_REQUEST", `invalid request: ${e.message}`, {
        finding: "request.malformed",
      });
      return reply.status(statusOf(err.code)).send(errorBody(err));
    }
    return reply
      .status(500)
      .send({ error: { code: "CORE_ERR_INTERNAL", message: "internal error", details: {} } });
  });
  app.setNotFoundHandler((_req, reply) => {
    void reply
      .status(statusOf("HGS_ERR_NOT_FOUND"))
      .send(errorBody(hgsError("HGS_ERR_NOT_FOUND", "no such route")));
  });

  const doc = openApiDocument(routes, opts.version ?? "0");
  app.get("/openapi.json", async () => doc);

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
      ...(r.admin
        ? {
            preHandler: async (req) => {
              const h = req.headers.authorization;
              await checkAdmin(ctx, h?.startsWith("Bearer ") ? h.slice(7).trim() : undefined);
            },
          }
        : {}),
      handler: async (req, reply) => {
        const res = await r.handler(ctx, {
          body: req.body,
          params: (req.params ?? {}) as Record<string, string>,
          query: (req.query ?? {}) as Record<string, unknown>,
        });
        return reply.status(res.status ?? 200).send(res.body);
      },
    });
  }
  await app.ready();
  return app;
}

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(listen);
  const port = Number(m?.[2]);
  if (!m?.[1] || !Number.isInteger(port) || port > 65535) {
    throw hgsError("HGS_ERR_CONFIG", `--listen must be HOST:PORT (got '${listen}')`);
  }
  return { host: m[1], port };
}

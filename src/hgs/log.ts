/**
 * The HGS log: JSON lines (pino) on stderr, one per finished request (request id, method, route,
 * status, latency) plus the service's own events. Bodies are never logged: they carry admin
 * credentials, key protectors, wrapped keys and health certificates. The redaction list is the
 * second line of defence, for a field that reaches a log call by mistake.
 */
import { pino, type DestinationStream, type Logger } from "pino";
import { LogController, type FastifyBaseLogger, type FastifyReply, type FastifyRequest } from "fastify";
import type { Observer } from "./observe.js";

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function isLogLevel(s: string): s is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(s);
}

/** Field names whose values are secrets (or carry them), at the top level or one level down. */
const SECRET_FIELDS = [
  "authorization",
  "adminCredential",
  "credential",
  "body",
  "payload",
  "keyProtector",
  "keys",
  "wrappedKeys",
  "transportKey",
  "healthCertificate",
  "secret",
  "privateKey",
  "tlsKeyPem",
];
export const REDACT_PATHS = [
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((f) => `*.${f}`),
  "req.headers.authorization",
  "headers.authorization",
];

/** Log bytes gathered before a write to stderr, and the longest a line waits for company. */
const LOG_BUFFER_BYTES = 4096;
const LOG_FLUSH_MS = 1000;

/**
 * A logger writing to `destination` (default: stderr). The default destination gathers lines
 * and writes them asynchronously, at least {@link LOG_BUFFER_BYTES} at a time or every
 * {@link LOG_FLUSH_MS}: a system call per line, twice per request, was a measurable share of a
 * loaded node's CPU (bench/hgs-load). It is flushed synchronously when the process exits
 * (normally, on a signal through serve.ts, or after an uncaught exception), so no line is lost
 * short of the process being killed outright (SIGKILL, the OOM killer); a line may reach stderr
 * up to a second after its event.
 */
export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  let dest = destination;
  if (!dest) {
    const stderr = pino.destination({ dest: 2, sync: false, minLength: LOG_BUFFER_BYTES });
    const timer = setInterval(() => stderr.flush(), LOG_FLUSH_MS);
    timer.unref();
    process.once("exit", () => {
      clearInterval(timer);
      try {
        stderr.flushSync();
      } catch {
        // Nothing was pending, or stderr is gone: nowhere left to report it.
      }
    });
    dest = stderr;
  }
  return pino(
    {
      level,
      base: { pid: process.pid, service: "bulwark-hgs" },
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
    },
    dest,
  );
}

/**
 * fastify's per-request log lines, reshaped: the route pattern rather than the URL (host ids stay
 * out of the grouping), no headers, and the arrival of a request only at debug.
 */
export class HgsLogController extends LogController {
  override incomingRequest(request: FastifyRequest): void {
    request.log.debug({ method: request.method, url: request.url }, "request received");
  }

  override requestCompleted(
    error: Error | null | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
  ): void {
    const line = {
      method: request.method,
      route: request.routeOptions.url ?? "(no route)",
      statusCode: reply.statusCode,
      responseTimeMs: Math.round(reply.elapsedTime * 100) / 100,
    };
    if (error) reply.log.error({ ...line, err: error }, "request failed");
    else reply.log.info(line, "request completed");
  }
}

/** Attestations and key releases as log lines of the request that ran them. */
export function logObserver(log: FastifyBaseLogger): Observer {
  return {
    attestation: (e) => log.info({ attestation: e }, `attestation ${e.mode}: ${e.status}`),
    release: (e) => log.info({ release: e }, `key release ${e.outcome}${e.code ? `: ${e.code}` : ""}`),
  };
}

/**
 * The life of an HGS node process: open the service, listen, log, and shut down cleanly on
 * SIGTERM or SIGINT (in-flight requests finish, the database is closed). With `workers > 1`,
 * node:cluster runs that many server processes on one shared socket, each with its own
 * connection to the same database; every decision reads the store, so they answer alike.
 * The CLI (`bulwark hgs serve`) parses options, calls {@link serve} and prints what it returns.
 */
import cluster, { type Worker } from "node:cluster";
import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import { AggregatorRegistry } from "prom-client";
import { hgsError } from "../attest/errors.js";
import { buildHgsServer } from "./http/server.js";
import type { SourceLimits } from "./http/rate-limit.js";
import { createLogger, type LogLevel } from "./log.js";
import { openHgs } from "./context.js";

export interface ServeOptions {
  readonly dir: string;
  /** Database URL overriding hgs.json's. */
  readonly db?: string;
  /** HOST:PORT overriding hgs.json's. */
  readonly listen?: string;
  /** Server processes sharing the socket (1..64, default 1). */
  readonly workers?: number;
  readonly logLevel?: LogLevel;
  /** Per-source limits overriding the defaults (http/rate-limit.ts). */
  readonly limits?: Partial<SourceLimits>;
}

export interface Serving {
  /** The HTTPS URL the node answers on. */
  readonly url: string;
  readonly workers: number;
  /** True in a worker process: its primary reports for the node, the worker stays quiet. */
  readonly isWorker: boolean;
  /** Settles with the exit status once a signal (or, in a worker, loss of the primary) has stopped the node. */
  readonly stopped: Promise<number>;
}

export const MAX_WORKERS = 64;

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(listen);
  const port = Number(m?.[2]);
  if (!m?.[1] || !Number.isInteger(port) || port > 65535) {
    throw hgsError("HGS_ERR_CONFIG", `--listen must be HOST:PORT (got '${listen}')`);
  }
  return { host: m[1], port };
}

export async function serve(opts: ServeOptions): Promise<Serving> {
  const workers = opts.workers ?? 1;
  if (!Number.isInteger(workers) || workers < 1 || workers > MAX_WORKERS) {
    throw hgsError("HGS_ERR_CONFIG", `workers must be 1..${MAX_WORKERS} (got ${workers})`);
  }
  const log = createLogger(opts.logLevel ?? "info");
  if (workers > 1 && cluster.isPrimary) return servePrimary(opts, workers, log);
  return serveOne(opts, workers, log);
}

/** Resolves on the first of SIGTERM, SIGINT or (in a worker) the primary going away. */
function untilStopRequested(log: Logger): Promise<void> {
  return new Promise((resolve) => {
    const stop = (why: string) => () => {
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
      process.off("disconnect", onDisconnect);
      log.info({ reason: why }, "stopping");
      resolve();
    };
    const onInt = stop("SIGINT");
    const onTerm = stop("SIGTERM");
    const onDisconnect = stop("primary gone");
    process.once("SIGINT", onInt);
    process.once("SIGTERM", onTerm);
    if (cluster.isWorker) process.once("disconnect", onDisconnect);
  });
}

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

/** One server process: the whole node, or one worker of a cluster. */
async function serveOne(opts: ServeOptions, workers: number, log: Logger): Promise<Serving> {
  const ctx = await openHgs(opts.dir, opts.db);
  const { host, port } = parseListen(opts.listen ?? ctx.dir.config.listen);
  const { app, metrics } = await buildHgsServer(ctx, {
    version: packageVersion(),
    logger: log,
    ...(opts.limits ? { limits: opts.limits } : {}),
    ...(cluster.isWorker ? { exposition: clusterExposition } : {}),
  });
  if (cluster.isWorker) {
    // The primary's aggregator asks each worker for this registry over IPC; prom-client adds
    // the worker's side of that exchange when an AggregatorRegistry is constructed.
    AggregatorRegistry.setRegistries(metrics.registry);
    new AggregatorRegistry();
  }
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
  const stopped = untilStopRequested(log).then(async () => {
    try {
      await app.close();
      await ctx.close();
      // A worker's IPC channel keeps it alive even after its primary asked it to stop (the
      // SIGTERM the primary sends can arrive before the channel closes): close it ourselves.
      if (cluster.isWorker && process.connected) process.disconnect();
      return 0;
    } catch (e) {
      log.error({ err: e }, "shutdown failed");
      return 1;
    }
  });
  return { url, workers, isWorker: cluster.isWorker, stopped };
}

const METRICS_REQUEST = "bulwark:hgs:metrics-request";
const METRICS_REPLY = "bulwark:hgs:metrics-reply";
const METRICS_TIMEOUT_MS = 5000;
let metricsRequests = 0;

interface MetricsReply {
  readonly type: typeof METRICS_REPLY;
  readonly id: number;
  readonly text?: string;
  readonly error?: string;
}

const isMetricsReply = (m: unknown): m is MetricsReply =>
  typeof m === "object" && m !== null && (m as { type?: unknown }).type === METRICS_REPLY;

/**
 * A worker's GET /metrics: the sum over every worker, from the primary. A scrape lands on any
 * worker; answering with that worker's counts alone would make counters jump between scrapes.
 */
function clusterExposition(): Promise<string> {
  const id = ++metricsRequests;
  return new Promise((resolve, reject) => {
    const onMessage = (m: unknown) => {
      if (!isMetricsReply(m) || m.id !== id) return;
      done();
      if (m.text !== undefined) resolve(m.text);
      else reject(hgsError("HGS_ERR_UNAVAILABLE", `cluster metrics: ${m.error ?? "no answer"}`));
    };
    const timer = setTimeout(() => {
      done();
      reject(hgsError("HGS_ERR_UNAVAILABLE", "cluster metrics: the primary did not answer"));
    }, METRICS_TIMEOUT_MS);
    const done = () => {
      clearTimeout(timer);
      process.off("message", onMessage);
    };
    process.on("message", onMessage);
    process.send?.({ type: METRICS_REQUEST, id });
  });
}

/** The primary of `--workers N`: forks, waits for every worker to listen, stops them on a signal. */
async function servePrimary(opts: ServeOptions, workers: number, log: Logger): Promise<Serving> {
  // Migrate once, before the workers open the database.
  await (await openHgs(opts.dir, opts.db)).close();
  const aggregator = new AggregatorRegistry();
  const urls: string[] = [];
  let stopping = false;
  const all = Array.from({ length: workers }, () => cluster.fork());
  const exited = all.map(
    (w) => new Promise<number>((resolve) => w.once("exit", (code) => resolve(code ?? 1))),
  );
  const answerMetrics = (w: Worker, m: { type?: unknown; id?: unknown }) => {
    if (m.type !== METRICS_REQUEST || typeof m.id !== "number") return;
    const id = m.id;
    aggregator.clusterMetrics().then(
      (text) => w.send({ type: METRICS_REPLY, id, text }),
      (e: unknown) => w.send({ type: METRICS_REPLY, id, error: (e as Error).message }),
    );
  };
  try {
    await new Promise<void>((resolve, reject) => {
      for (const w of all) {
        w.on("message", (m: { listening?: string; type?: unknown; id?: unknown }) => {
          answerMetrics(w, m);
          if (m.listening) urls.push(m.listening);
          if (urls.length === workers) resolve();
        });
        w.once("exit", (code) => {
          if (urls.length < workers)
            reject(hgsError("HGS_ERR_CONFIG", `an HGS worker exited with ${code} while starting`));
          else if (!stopping) log.error({ worker: w.process.pid, code }, "an HGS worker exited");
        });
      }
    });
  } catch (e) {
    for (const w of all) w.kill("SIGTERM");
    await Promise.all(exited);
    throw e;
  }
  const stopped = untilStopRequested(log).then(async () => {
    stopping = true;
    for (const w of all) w.kill("SIGTERM");
    const codes = await Promise.all(exited);
    return codes.every((c) => c === 0) ? 0 : 1;
  });
  return { url: urls[0] ?? "", workers, isWorker: false, stopped };
}

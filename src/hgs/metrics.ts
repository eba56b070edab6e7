/**
 * Prometheus metrics of one HGS server. The registry belongs to the server instance, not to
 * prom-client's global default, so two servers in one process keep separate counts. Attestation
 * and release metrics are fed by the use cases' diagnostics-channel events (observe.ts); HTTP
 * latency by the server's response hook. Labels are bounded sets (modes, statuses, outcomes,
 * route patterns, methods, status codes): no host id or URL ever becomes a label.
 */
import { Counter, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { AttestationEvent, Observer, ReleaseEvent } from "./observe.js";

let processMetrics: Registry | undefined;

/**
 * prom-client's process metrics (CPU, memory, event-loop delay, GC), collected once per process:
 * they describe the process, not a server, and each collection starts monitors that are never
 * stopped, so a process running many servers (the tests) must not start them per server.
 */
function processRegistry(): Registry {
  if (!processMetrics) {
    processMetrics = new Registry();
    collectDefaultMetrics({ register: processMetrics });
  }
  return processMetrics;
}

export class HgsMetrics implements Observer {
  private readonly own = new Registry();
  /** This server's metrics plus the process metrics: what GET /metrics exposes. */
  readonly registry: Registry;
  private readonly attestations = new Counter({
    name: "bulwark_hgs_attestations_total",
    help: "Attestations answered, by attestation mode and verdict status.",
    labelNames: ["mode", "status"] as const,
    registers: [this.own],
  });
  private readonly attestationSeconds = new Histogram({
    name: "bulwark_hgs_attestation_duration_seconds",
    help: "Time to judge one attestation, by attestation mode.",
    labelNames: ["mode"] as const,
    registers: [this.own],
  });
  private readonly releases = new Counter({
    name: "bulwark_hgs_key_releases_total",
    help: "Key release requests answered, by outcome (released or refused).",
    labelNames: ["outcome"] as const,
    registers: [this.own],
  });
  private readonly releaseSeconds = new Histogram({
    name: "bulwark_hgs_key_release_duration_seconds",
    help: "Time to answer one key release request.",
    registers: [this.own],
  });
  private readonly httpSeconds = new Histogram({
    name: "bulwark_hgs_http_request_duration_seconds",
    help: "HTTP request latency, by route pattern, method and status code.",
    labelNames: ["route", "method", "status_code"] as const,
    registers: [this.own],
  });

  constructor() {
    this.registry = Registry.merge([this.own, processRegistry()]);
  }

  attestation(e: AttestationEvent): void {
    this.attestations.inc({ mode: e.mode, status: e.status });
    this.attestationSeconds.observe({ mode: e.mode }, e.durationMs / 1000);
  }

  release(e: ReleaseEvent): void {
    this.releases.inc({ outcome: e.outcome });
    this.releaseSeconds.observe(e.durationMs / 1000);
  }

  /** `route` is the matched pattern (e.g. /admin/v1/hosts/:id), or undefined for no match. */
  request(route: string | undefined, method: string, statusCode: number, seconds: number): void {
    this.httpSeconds.observe(
      { route: route ?? "(no route)", method, status_code: String(statusCode) },
      seconds,
    );
  }

  /** The text exposition format (what GET /metrics answers). */
  exposition(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

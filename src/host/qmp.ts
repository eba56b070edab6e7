/**
 * Our QMP client (QEMU Machine Protocol, docs/interop/qmp-spec.rst): greeting, capabilities
 * negotiation, id-tagged commands with timeouts, and events. One JSON object per line.
 */
import { EventEmitter } from "node:events";
import net from "node:net";
import { hostError } from "./errors.js";

export interface QmpEvent {
  readonly event: string;
  readonly data?: Record<string, unknown>;
  readonly timestamp?: { seconds: number; microseconds: number };
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
  command: string;
}

export class QmpClient extends EventEmitter<{ event: [QmpEvent]; close: [] }> {
  private buffer = "";
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private closed = false;
  greeting: { QMP?: { version?: { qemu?: { major: number; minor: number; micro: number } } } } | undefined;

  private constructor(private readonly socket: net.Socket) {
    super();
    socket.setEncoding("utf8");
    socket.on("data", (d: string) => this.onData(d));
    socket.on("close", () => this.onClose());
    socket.on("error", () => this.onClose());
  }

  /** Connects to a QMP UNIX socket and negotiates capabilities. */
  static async connect(socketPath: string, opts: { timeoutMs?: number } = {}): Promise<QmpClient> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.createConnection(socketPath);
      const timer = setTimeout(() => {
        s.destroy();
        reject(hostError("HOST_ERR_QMP", `QMP connect to ${socketPath} timed out`));
      }, timeoutMs);
      s.once("connect", () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once("error", (e) => {
        clearTimeout(timer);
        reject(hostError("HOST_ERR_QMP", `QMP connect to ${socketPath} failed: ${e.message}`));
      });
    });
    const client = new QmpClient(socket);
    client.greeting = await client.waitGreeting(timeoutMs);
    await client.execute("qmp_capabilities", undefined, { timeoutMs });
    return client;
  }

  private greetingWaiter: ((g: unknown) => void) | undefined;

  private waitGreeting(timeoutMs: number): Promise<QmpClient["greeting"]> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(hostError("HOST_ERR_QMP", "no QMP greeting")), timeoutMs);
      this.greetingWaiter = (g) => {
        clearTimeout(timer);
        resolve(g as QmpClient["greeting"]);
      };
    });
  }

  private onData(d: string): void {
    this.buffer += d;
    let nl: number;
    while ((nl = this.buffer.indexOf("\n")) >= 0) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (!line) continue;
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      if ("QMP" in msg) {
        this.greetingWaiter?.(msg);
        this.greetingWaiter = undefined;
      } else if ("event" in msg) {
        this.emit("event", msg as unknown as QmpEvent);
      } else if ("id" in msg) {
        const p = this.pending.get(String(msg["id"]));
        if (!p) continue;
        this.pending.delete(String(msg["id"]));
        clearTimeout(p.timer);
        if ("error" in msg) {
          const err = msg["error"] as { class?: string; desc?: string };
          p.reject(
            hostError("HOST_ERR_QMP", `QMP ${p.command} failed: ${err.desc ?? "error"}`, {
              qmpClass: err.class ?? "GenericError",
            }),
          );
        } else p.resolve(msg["return"]);
      }
    }
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(hostError("HOST_ERR_QMP", `QMP connection closed during ${p.command}`));
      this.pending.delete(id);
    }
    this.emit("close");
  }

  get isClosed(): boolean {
    return this.closed;
  }

  execute<T = unknown>(
    command: string,
    args?: Record<string, unknown>,
    opts: { timeoutMs?: number } = {},
  ): Promise<T> {
    if (this.closed) return Promise.reject(hostError("HOST_ERR_QMP", "QMP connection is closed"));
    const id = `b${this.nextId++}`;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(hostError("HOST_ERR_QMP", `QMP ${command} timed out`));
      }, opts.timeoutMs ?? 30_000);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer, command });
      this.socket.write(
        `${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id })}\n`,
      );
    });
  }

  /** Resolves with the first event named `name` (optionally matching `pred`). */
  waitEvent(name: string, timeoutMs: number, pred: (e: QmpEvent) => boolean = () => true): Promise<QmpEvent> {
    return new Promise((resolve, reject) => {
      const onEvent = (e: QmpEvent) => {
        if (e.event === name && pred(e)) {
          cleanup();
          resolve(e);
        }
      };
      const onClose = () => {
        cleanup();
        reject(hostError("HOST_ERR_QMP", `QMP closed while waiting for ${name}`));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(hostError("HOST_ERR_QMP", `timed out waiting for QMP event ${name}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.off("event", onEvent);
        this.off("close", onClose);
      };
      this.on("event", onEvent);
      this.on("close", onClose);
    });
  }

  close(): void {
    this.socket.end();
    this.socket.destroy();
    this.onClose();
  }
}

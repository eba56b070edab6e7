/**
 * Adapter: TPM over a byte stream (TCP or UNIX socket). Used for swtpm's command channel
 * (`swtpm socket --server type=tcp|unixio`, raw TPM 2.0 commands) and, with framing, for the
 * Microsoft/IBM simulator protocol (mssim.ts). One connection at a time; it is opened on
 * first use and can be closed so another client (tpm2-tools) may connect to the simulator.
 */
import net from "node:net";
import { tpmError } from "../errors.js";

export type Endpoint = { host: string; port: number } | { path: string };

export function describe(ep: Endpoint): string {
  return "path" in ep ? `unix:${ep.path}` : `${ep.host}:${ep.port}`;
}

/** A connected socket with an exact-length read on top of Node's stream events. */
export class SocketReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private waiter: (() => void) | undefined;
  private failure: Error | undefined;
  private ended = false;

  private constructor(
    readonly socket: net.Socket,
    private readonly label: string,
  ) {
    socket.on("data", (d: Buffer) => {
      this.chunks.push(d);
      this.buffered += d.length;
      this.wake();
    });
    socket.on("error", (e) => {
      this.failure = e;
      this.wake();
    });
    socket.on("close", () => {
      this.ended = true;
      this.wake();
    });
  }

  static connect(ep: Endpoint, timeoutMs = 10_000): Promise<SocketReader> {
    return new Promise((resolve, reject) => {
      const socket =
        "path" in ep
          ? net.createConnection({ path: ep.path })
          : net.createConnection({ host: ep.host, port: ep.port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(tpmError("TPM_ERR_TRANSPORT", `timed out connecting to ${describe(ep)}`));
      }, timeoutMs);
      socket.once("connect", () => {
        clearTimeout(timer);
        socket.setNoDelay(true);
        resolve(new SocketReader(socket, describe(ep)));
      });
      socket.once("error", (e) => {
        clearTimeout(timer);
        reject(
          tpmError("TPM_ERR_TRANSPORT", `cannot connect to ${describe(ep)}: ${e.message}`, {}, { cause: e }),
        );
      });
    });
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  async write(bytes: Uint8Array): Promise<void> {
    await new Promise<void>((resolve, reject) =>
      this.socket.write(bytes, (e) =>
        e ? reject(tpmError("TPM_ERR_TRANSPORT", `write to ${this.label} failed: ${e.message}`)) : resolve(),
      ),
    );
  }

  /** Resolves with exactly `n` bytes, or fails when the peer closes first or time runs out. */
  async read(n: number, timeoutMs = 120_000): Promise<Uint8Array> {
    const deadline = Date.now() + timeoutMs;
    while (this.buffered < n) {
      if (this.failure) throw tpmError("TPM_ERR_TRANSPORT", `${this.label}: ${this.failure.message}`);
      if (this.ended) throw tpmError("TPM_ERR_TRANSPORT", `${this.label} closed the connection mid-response`);
      const left = deadline - Date.now();
      if (left <= 0) throw tpmError("TPM_ERR_TRANSPORT", `${this.label} did not answer in ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    const all = Buffer.concat(this.chunks);
    this.chunks = all.length > n ? [all.subarray(n)] : [];
    this.buffered = all.length - n;
    return new Uint8Array(all.subarray(0, n));
  }

  async close(): Promise<void> {
    if (this.socket.destroyed) return;
    await new Promise<void>((resolve) => {
      this.socket.once("close", () => resolve());
      this.socket.end();
      setTimeout(() => {
        this.socket.destroy();
        resolve();
      }, 1000).unref();
    });
  }
}

/**
 * Adapter: swtpm (libtpms) over TCP or a UNIX socket.
 *
 * - Command channel: raw TPM 2.0 command/response bytes (swtpm(8), `--server`).
 * - Control channel (`--ctrl`): swtpm's ioctl protocol over a socket (swtpm-tpm_ioctl.h,
 *   `enum { CMD_GET_CAPABILITY = 1, CMD_INIT, CMD_SHUTDOWN, ... CMD_STOP = 14 }`): a big-endian
 *   u32 command code and payload; the answer starts with a big-endian u32 TPM result. CMD_INIT
 *   is _TPM_Init (power-on); afterwards the TPM expects TPM2_Startup.
 */
import { tpmError } from "../errors.js";
import { SocketReader, describe, type Endpoint } from "./stream.js";
import { HEADER_SIZE, Serializer, responseSizeFromHeader, type Transport } from "./transport.js";

export class SwtpmTransport implements Transport {
  private conn: SocketReader | undefined;
  private readonly queue = new Serializer();

  constructor(readonly endpoint: Endpoint) {}

  send(command: Uint8Array): Promise<Uint8Array> {
    return this.queue.run(async () => {
      this.conn ??= await SocketReader.connect(this.endpoint);
      const conn = this.conn;
      try {
        await conn.write(command);
        const header = await conn.read(HEADER_SIZE);
        const size = responseSizeFromHeader(header);
        const body = await conn.read(size - HEADER_SIZE);
        const out = new Uint8Array(size);
        out.set(header);
        out.set(body, HEADER_SIZE);
        return out;
      } catch (e) {
        this.conn = undefined;
        await conn.close();
        throw e;
      }
    });
  }

  close(): Promise<void> {
    return this.queue.run(async () => {
      const c = this.conn;
      this.conn = undefined;
      await c?.close();
    });
  }

  toString(): string {
    return `swtpm ${describe(this.endpoint)}`;
  }
}

/** swtpm control-channel commands (swtpm's tpm_ioctl.h). */
export const SWTPM_CTRL = {
  GET_CAPABILITY: 1,
  INIT: 2,
  SHUTDOWN: 3,
  GET_TPMESTABLISHED: 4,
  SET_LOCALITY: 5,
  CANCEL_TPM_CMD: 9,
  STORE_VOLATILE: 10,
  STOP: 14,
} as const;

/** Flag of CMD_INIT: delete volatile state (PTM_INIT_FLAG_DELETE_VOLATILE). */
export const PTM_INIT_FLAG_DELETE_VOLATILE = 1;

/** The control channel of one swtpm; each request uses its own short connection. */
export class SwtpmControl {
  constructor(readonly endpoint: Endpoint) {}

  private async request(cmd: number, payload: Uint8Array, extra = 0): Promise<Uint8Array> {
    const conn = await SocketReader.connect(this.endpoint);
    try {
      const msg = new Uint8Array(4 + payload.length);
      new DataView(msg.buffer).setUint32(0, cmd, false);
      msg.set(payload, 4);
      await conn.write(msg);
      const res = await conn.read(4 + extra, 30_000);
      const result = new DataView(res.buffer, res.byteOffset).getUint32(0, false);
      if (result !== 0) {
        throw tpmError(
          "TPM_ERR_CONTROL",
          `swtpm control command ${cmd} at ${describe(this.endpoint)} failed with 0x${result.toString(16)}`,
          {
            command: cmd,
            result,
          },
        );
      }
      return res.subarray(4);
    } finally {
      await conn.close();
    }
  }

  /** _TPM_Init: powers the TPM on (or resets it); TPM2_Startup must follow. */
  async init(flags = 0): Promise<void> {
    const p = new Uint8Array(4);
    new DataView(p.buffer).setUint32(0, flags, false);
    await this.request(SWTPM_CTRL.INIT, p);
  }

  /** Sets the locality of subsequent commands (0..4). */
  async setLocality(locality: number): Promise<void> {
    await this.request(SWTPM_CTRL.SET_LOCALITY, Uint8Array.of(locality));
  }

  /** Stops the TPM (it answers no commands until the next init). */
  async stop(): Promise<void> {
    await this.request(SWTPM_CTRL.STOP, new Uint8Array(0));
  }

  /** Asks swtpm to shut down its process cleanly (state is saved). */
  async shutdown(): Promise<void> {
    await this.request(SWTPM_CTRL.SHUTDOWN, new Uint8Array(0));
  }
}

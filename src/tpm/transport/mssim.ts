/**
 * Adapter: the Microsoft / IBM TPM 2.0 simulator protocol ("mssim", ms-tpm-20-ref
 * TcpServer.c; also spoken by tpm2-tools' mssim TCTI).
 *
 * - Command port: u32 TPM_SEND_COMMAND (8), u8 locality, u32 size, command; the answer is
 *   u32 size, response, then a u32 acknowledgement (0).
 * - Platform port (command port + 1): a u32 signal (TPM_SIGNAL_POWER_ON = 1, NV_ON = 11, ...)
 *   answered by a u32 acknowledgement (0).
 */
import { tpmError } from "../errors.js";
import { SocketReader, describe } from "./stream.js";
import { MAX_RESPONSE_SIZE, Serializer, responseSizeFromHeader, type Transport } from "./transport.js";

export const MSSIM = {
  SIGNAL_POWER_ON: 1,
  SIGNAL_POWER_OFF: 2,
  SIGNAL_PHYS_PRES_ON: 3,
  SIGNAL_PHYS_PRES_OFF: 4,
  SEND_COMMAND: 8,
  SIGNAL_NV_ON: 11,
  SIGNAL_NV_OFF: 12,
  SESSION_END: 20,
  STOP: 21,
} as const;

const be32 = (n: number): Uint8Array =>
  Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
const readBe32 = (b: Uint8Array): number => new DataView(b.buffer, b.byteOffset, 4).getUint32(0, false);

export class MssimTransport implements Transport {
  private conn: SocketReader | undefined;
  private readonly queue = new Serializer();

  constructor(
    readonly endpoint: { host: string; port: number },
    readonly locality = 0,
  ) {}

  send(command: Uint8Array): Promise<Uint8Array> {
    return this.queue.run(async () => {
      this.conn ??= await SocketReader.connect(this.endpoint);
      const conn = this.conn;
      try {
        const head = new Uint8Array(9);
        head.set(be32(MSSIM.SEND_COMMAND));
        head[4] = this.locality;
        head.set(be32(command.length), 5);
        await conn.write(head);
        await conn.write(command);
        const size = readBe32(await conn.read(4));
        if (size < 10 || size > MAX_RESPONSE_SIZE) {
          throw tpmError("TPM_ERR_MALFORMED_RESPONSE", `mssim response size ${size} out of range`);
        }
        const rsp = await conn.read(size);
        if (responseSizeFromHeader(rsp) !== size) {
          throw tpmError("TPM_ERR_MALFORMED_RESPONSE", "mssim frame size and TPM response size differ");
        }
        const ack = readBe32(await conn.read(4));
        if (ack !== 0) throw tpmError("TPM_ERR_TRANSPORT", `mssim acknowledged with ${ack}`);
        return rsp;
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
      if (c) {
        await c.write(be32(MSSIM.SESSION_END)).catch(() => undefined);
        await c.close();
      }
    });
  }

  toString(): string {
    return `mssim ${describe(this.endpoint)}`;
  }
}

/** The simulator's platform port: power and NV signals. */
export class MssimPlatform {
  constructor(readonly endpoint: { host: string; port: number }) {}

  async signal(sig: number): Promise<void> {
    const conn = await SocketReader.connect(this.endpoint);
    try {
      await conn.write(be32(sig));
      const ack = readBe32(await conn.read(4, 30_000));
      if (ack !== 0) throw tpmError("TPM_ERR_CONTROL", `mssim platform signal ${sig} answered ${ack}`);
    } finally {
      await conn.write(be32(MSSIM.SESSION_END)).catch(() => undefined);
      await conn.close();
    }
  }

  /** Power-on then NV-on: what a platform does before TPM2_Startup. */
  async powerOn(): Promise<void> {
    await this.signal(MSSIM.SIGNAL_POWER_ON);
    await this.signal(MSSIM.SIGNAL_NV_ON);
  }

  async powerOff(): Promise<void> {
    await this.signal(MSSIM.SIGNAL_POWER_OFF);
  }
}

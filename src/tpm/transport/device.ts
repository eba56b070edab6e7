/**
 * Adapter: a Linux TPM character device (/dev/tpmrm0 with the kernel resource manager, or
 * /dev/tpm0). One write of the whole command, one read of the whole response (Linux
 * drivers/char/tpm/tpm-dev-common.c).
 */
import { open, type FileHandle } from "node:fs/promises";
import { tpmError, isTpmError } from "../errors.js";
import { MAX_RESPONSE_SIZE, Serializer, responseSizeFromHeader, type Transport } from "./transport.js";

export class DeviceTransport implements Transport {
  private fh: FileHandle | undefined;
  private readonly queue = new Serializer();

  constructor(readonly path = "/dev/tpmrm0") {}

  send(command: Uint8Array): Promise<Uint8Array> {
    return this.queue.run(async () => {
      try {
        this.fh ??= await open(this.path, "r+");
        await this.fh.write(command, 0, command.length, null);
        const buf = new Uint8Array(MAX_RESPONSE_SIZE);
        const { bytesRead } = await this.fh.read(buf, 0, buf.length, null);
        const rsp = buf.slice(0, bytesRead);
        if (responseSizeFromHeader(rsp) !== bytesRead) {
          throw tpmError("TPM_ERR_MALFORMED_RESPONSE", `${this.path}: short response (${bytesRead} bytes)`);
        }
        return rsp;
      } catch (e) {
        if (isTpmError(e)) throw e;
        const code = (e as NodeJS.ErrnoException).code;
        const msg =
          code === "ENOENT"
            ? "no such TPM device (no TPM here? a software TPM is reached with swtpm:host=H,port=P or swtpm:path=SOCKET)"
            : e instanceof Error
              ? e.message
              : String(e);
        throw tpmError("TPM_ERR_TRANSPORT", `${this.path}: ${msg}`, {}, { cause: e });
      }
    });
  }

  close(): Promise<void> {
    return this.queue.run(async () => {
      const f = this.fh;
      this.fh = undefined;
      await f?.close();
    });
  }

  toString(): string {
    return `device ${this.path}`;
  }
}

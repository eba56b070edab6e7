/**
 * Test helper: speaks the Microsoft/IBM simulator ("mssim") protocol on two TCP ports and
 * forwards TPM commands to a real swtpm, because no mssim simulator is packaged for Debian
 * bookworm. Both our MssimTransport and tpm2-tools' mssim TCTI (an independent implementation
 * of the framing) are run against it, so the framing is checked against a real client, and the
 * TPM answering is real. Platform signals: POWER_ON becomes swtpm CMD_INIT unless the TPM is
 * already on (as ms-tpm-20-ref's _rpc__Signal_PowerOn ignores it), POWER_OFF turns it off;
 * others are acknowledged.
 */
import net from "node:net";
import type { SwtpmControl, SwtpmTransport } from "../../src/tpm/transport/swtpm.js";
import { freePortPair } from "./tpm-swtpm.js";

export interface MssimBridge {
  readonly port: number;
  readonly platformPort: number;
  /** Signals seen on the platform port, in order. */
  readonly signals: number[];
  /** Commands forwarded, with the locality each came with. */
  readonly localities: number[];
  close(): Promise<void>;
}

const be32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};

/** Reads framed requests from a socket one at a time. */
function framed(
  socket: net.Socket,
  handle: (take: (n: number) => Promise<Buffer>) => Promise<boolean>,
): void {
  let buf = Buffer.alloc(0);
  let want: { n: number; resolve: (b: Buffer) => void } | undefined;
  const pump = () => {
    if (want && buf.length >= want.n) {
      const out = buf.subarray(0, want.n);
      buf = buf.subarray(want.n);
      const w = want;
      want = undefined;
      w.resolve(out);
    }
  };
  socket.on("data", (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    pump();
  });
  socket.on("error", () => undefined);
  const take = (n: number) =>
    new Promise<Buffer>((resolve) => {
      want = { n, resolve };
      pump();
    });
  void (async () => {
    while (!socket.destroyed && (await handle(take)));
    socket.end();
  })();
}

export async function startMssimBridge(tpm: SwtpmTransport, control: SwtpmControl): Promise<MssimBridge> {
  const { port, ctrlPort: platformPort } = await freePortPair();
  const signals: number[] = [];
  const localities: number[] = [];
  const sockets = new Set<net.Socket>();
  let powered = false;
  const command = net.createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    framed(s, async (take) => {
      const cmd = (await take(4)).readUInt32BE(0);
      if (cmd === 20) return false; // TPM_SESSION_END
      if (cmd !== 8) {
        s.write(be32(0));
        return true;
      }
      localities.push((await take(1))[0] ?? 0);
      const size = (await take(4)).readUInt32BE(0);
      const body = await take(size);
      const rsp = await tpm.send(new Uint8Array(body));
      s.write(Buffer.concat([be32(rsp.length), Buffer.from(rsp), be32(0)]));
      return true;
    });
  });
  const platform = net.createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    framed(s, async (take) => {
      const sig = (await take(4)).readUInt32BE(0);
      if (sig === 20) return false;
      signals.push(sig);
      if (sig === 1 && !powered) {
        await control.init();
        powered = true;
      }
      if (sig === 2) powered = false;
      s.write(be32(0));
      return true;
    });
  });
  await new Promise<void>((r) => command.listen(port, "127.0.0.1", r));
  await new Promise<void>((r) => platform.listen(platformPort, "127.0.0.1", r));
  return {
    port,
    platformPort,
    signals,
    localities,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => command.close(() => r()));
      await new Promise<void>((r) => platform.close(() => r()));
      await tpm.close();
    },
  };
}

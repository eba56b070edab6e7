import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";

/** Pipes `source` through `transform` and returns everything it emitted. */
export async function collect(
  source: Readable | Buffer[],
  transform: NodeJS.ReadWriteStream,
): Promise<Buffer> {
  const parts: Buffer[] = [];
  await pipeline(
    Array.isArray(source) ? Readable.from(source) : source,
    transform,
    new Writable({
      write(b: Buffer, _e, cb) {
        parts.push(b);
        cb();
      },
    }),
  );
  return Buffer.concat(parts);
}

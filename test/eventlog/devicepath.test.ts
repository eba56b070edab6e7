/** Device path text (UEFI 2.10 section 10.6.1.6) for node types firmware puts in boot paths. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { BulwarkError } from "../../src/core/errors.js";
import { parseDevicePath } from "../../src/eventlog/index.js";
import { guidToBytes } from "../../src/uefi/guid.js";

function node(type: number, sub: number, data: number[] | Uint8Array): number[] {
  const len = 4 + data.length;
  return [type, sub, len & 0xff, len >> 8, ...data];
}
const u16 = (v: number) => [v & 0xff, v >> 8];
const u32 = (v: number) => [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >>> 24];
const u64 = (v: number) => [...u32(v), 0, 0, 0, 0];
const END = node(0x7f, 0xff, []);
const text = (...nodes: number[][]) => parseDevicePath(new Uint8Array(nodes.flat())).text;

test("device path nodes render as the UEFI specification's text forms", () => {
  const gpt = "b01a0000-0000-4000-8000-000000000002";
  assert.equal(
    text(
      node(2, 1, [...u32(0x0a0341d0), ...u32(0)]),
      node(1, 1, [0, 2]),
      node(4, 1, [...u32(1), ...u64(0x800), ...u64(0x1f000), ...guidToBytes(gpt), 2, 2]),
      node(4, 4, [...Buffer.from("\\EFI\\BOOT\\BOOTX64.EFI\0", "utf16le")]),
      END,
    ),
    `PciRoot(0x0)/Pci(0x2,0x0)/HD(1,GPT,${gpt},0x800,0x1f000)/\\EFI\\BOOT\\BOOTX64.EFI`,
  );
  assert.equal(text(node(2, 1, [...u32(0x0a0841d0), ...u32(1)]), END), "PcieRoot(0x1)");
  assert.equal(text(node(2, 1, [...u32(0x050141d0), ...u32(0)]), END), "Acpi(PNP0501,0x0)");
  assert.equal(
    text(node(3, 11, [0x52, 0x54, 0, 0x12, 0x34, 0x56, ...new Array(26).fill(0), 1]), END),
    "MAC(525400123456,0x1)",
  );
  assert.equal(text(node(3, 18, [...u16(0), ...u16(0xffff), ...u16(0)]), END), "Sata(0x0,0xffff,0x0)");
  assert.equal(
    text(node(3, 23, [...u32(1), 1, 2, 3, 4, 5, 6, 7, 8]), END),
    "NVMe(0x1,01-02-03-04-05-06-07-08)",
  );
  assert.equal(text(node(3, 24, [...Buffer.from("http://boot/x.efi")]), END), "Uri(http://boot/x.efi)");
  assert.equal(text(node(9, 9, [0xab]), END), "Path(9,9,ab)");
  // Two instances, separated by an End-This-Instance node.
  assert.equal(
    text(node(1, 1, [0, 1]), node(0x7f, 0x01, []), node(1, 1, [0, 3]), END),
    "Pci(0x1,0x0),Pci(0x3,0x0)",
  );
  // A node too short for its type falls back to the generic form instead of failing.
  assert.equal(text(node(1, 1, [0]), END), "Path(1,1,00)");
});

test("bad node lengths are typed errors", () => {
  for (const bad of [
    [1, 1, 2, 0],
    [1, 1, 200, 0, 0],
    [1, 1],
  ]) {
    assert.throws(
      () => parseDevicePath(new Uint8Array(bad)),
      (e: unknown) => e instanceof BulwarkError && e.code === "EVENTLOG_ERR_MALFORMED",
    );
  }
});

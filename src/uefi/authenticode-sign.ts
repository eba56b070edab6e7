/**
 * Signing PE/COFF images with Authenticode, as sbsign does: the image is padded to a multiple
 * of 8 bytes (the attribute certificate table is quadword aligned, PE Format "The Attribute
 * Certificate Table"), its Authenticode digest is computed over the padded image, and a
 * WIN_CERTIFICATE (wRevision 0x0200, WIN_CERT_TYPE_PKCS_SIGNED_DATA) holding a PKCS #7
 * SignedData with SpcIndirectDataContent is appended; the Certificate Table data directory
 * entry points at it and OptionalHeader.CheckSum is recomputed.
 *
 *   SpcIndirectDataContent ::= SEQUENCE {
 *     data SEQUENCE { type SPC_PE_IMAGE_DATAOBJ, value SpcPeImageData },
 *     messageDigest DigestInfo }
 *   SpcPeImageData ::= SEQUENCE { flags BIT STRING, file [0] EXPLICIT SpcLink }
 *   SpcLink [2] EXPLICIT SpcString, SpcString [0] IMPLICIT BMPString "<<<Obsolete>>>"
 * ("Windows Authenticode Portable Executable Signature Format", section "Authenticode-Specific
 * Structures"; the encoding matches sbsigntool's idc.c.)
 *
 * `mode: "replace"` (default) drops existing signatures; `"append"` keeps them and adds one more
 * (the digest is unchanged because the certificate table is never hashed).
 */
import type { KeyObject } from "node:crypto";
import { BitString, OctetString } from "@peculiar/asn1-schema";
import { AlgorithmIdentifier } from "@peculiar/asn1-x509";
import { attribute, buildSignedData } from "../asn1/cms.js";
import { OID, OID_BY_DIGEST, type HashName } from "../asn1/oid.js";
import { encodeDer } from "../asn1/schema.js";
import { uefiPeError } from "./errors-pe.js";
import { authenticodeDigest } from "./authenticode.js";
import {
  DigestInfo,
  SpcAttributeTypeAndOptionalValue,
  SpcIndirectDataContent,
  SpcLink,
  SpcPeImageData,
  SpcString,
} from "./authenticode-spc.js";
import {
  parsePe,
  peChecksum,
  WIN_CERT_REVISION_2_0,
  WIN_CERT_TYPE_PKCS_SIGNED_DATA,
  type PeImage,
} from "./pe.js";

export interface SignPeOptions {
  readonly key: KeyObject;
  /** Signer certificate (DER). */
  readonly certificate: Uint8Array;
  /** Further certificates for the PKCS #7 bag (intermediates). */
  readonly chain?: readonly Uint8Array[];
  readonly hash?: HashName;
  readonly mode?: "replace" | "append";
}

/** DER SpcIndirectDataContent for a PE image digest (authenticode-spc.ts), as sbsign writes it. */
export function spcIndirectDataContent(digest: Uint8Array, hash: HashName): Uint8Array {
  const peImageData = new SpcPeImageData({
    flags: new BitString(new Uint8Array(0)),
    file: new SpcLink({ file: new SpcString({ unicode: "<<<Obsolete>>>" }) }),
  });
  return encodeDer(
    new SpcIndirectDataContent({
      data: new SpcAttributeTypeAndOptionalValue({
        type: OID.SPC_PE_IMAGE_DATAOBJ,
        value: encodeDer(peImageData).slice().buffer,
      }),
      messageDigest: new DigestInfo({
        digestAlgorithm: new AlgorithmIdentifier({ algorithm: OID_BY_DIGEST[hash], parameters: null }),
        digest: new OctetString(digest),
      }),
    }),
  );
}

/** Builds the Authenticode PKCS #7 (ContentInfo) for an image digest. */
export function authenticodeSignedData(digest: Uint8Array, opts: SignPeOptions): Uint8Array {
  const hash = opts.hash ?? "sha256";
  return buildSignedData({
    contentType: OID.SPC_INDIRECT_DATA_OBJID,
    content: spcIndirectDataContent(digest, hash),
    signers: [
      {
        key: opts.key,
        certificate: opts.certificate,
        hash,
        // SpcSpOpusInfo (an empty SEQUENCE) as sbsign and signtool add it.
        signedAttributes: [attribute(OID.SPC_SP_OPUS_INFO_OBJID, Uint8Array.of(0x30, 0x00))],
      },
    ],
    certificates: [opts.certificate, ...(opts.chain ?? [])],
  });
}

function setU32(b: Uint8Array, offset: number, v: number): void {
  new DataView(b.buffer, b.byteOffset, b.byteLength).setUint32(offset, v >>> 0, true);
}

/** The image without its certificate table (which must end the file), plus the kept entries. */
function splitCertificateTable(pe: PeImage): { body: Uint8Array; kept: Uint8Array } {
  const t = pe.certificateTable;
  if (!t) return { body: pe.bytes, kept: new Uint8Array(0) };
  if (pe.certificateTableProblem) {
    throw uefiPeError("UEFI_ERR_PE_CERT_TABLE", `cannot sign: ${pe.certificateTableProblem}`);
  }
  if (t.offset + t.size !== pe.bytes.length) {
    throw uefiPeError("UEFI_ERR_PE_CERT_TABLE", "cannot sign: data follows the certificate table", {
      offset: t.offset + t.size,
    });
  }
  return { body: pe.bytes.subarray(0, t.offset), kept: pe.bytes.subarray(t.offset, t.offset + t.size) };
}

/** Signs a PE image; returns the new file bytes. See the module comment. */
export function signPe(image: Uint8Array, opts: SignPeOptions): Uint8Array {
  const pe = parsePe(image);
  if (pe.securityDirectoryOffset === undefined) {
    throw uefiPeError(
      "UEFI_ERR_PE_INVALID",
      `image has ${pe.numberOfRvaAndSizes} data directories: no Certificate Table entry to point at a signature`,
    );
  }
  const { body, kept } = splitCertificateTable(pe);
  const append = opts.mode === "append" && kept.length > 0;
  // Unsigned layout: body padded to 8, security directory cleared; hashing this equals hashing the signed file.
  const padded = (body.length + 7) & ~7;
  const unsigned = new Uint8Array(padded);
  unsigned.set(body);
  setU32(unsigned, pe.securityDirectoryOffset, 0);
  setU32(unsigned, pe.securityDirectoryOffset + 4, 0);
  const hash = opts.hash ?? "sha256";
  const digest = authenticodeDigest(parsePe(unsigned), hash);
  const signedData = authenticodeSignedData(digest, opts);
  const entryLength = 8 + signedData.length;
  const entry = new Uint8Array((entryLength + 7) & ~7);
  setU32(entry, 0, entryLength);
  new DataView(entry.buffer).setUint16(4, WIN_CERT_REVISION_2_0, true);
  new DataView(entry.buffer).setUint16(6, WIN_CERT_TYPE_PKCS_SIGNED_DATA, true);
  entry.set(signedData, 8);
  const keptAligned = append ? (kept.length + 7) & ~7 : 0;
  const table = new Uint8Array(keptAligned + entry.length);
  if (append) table.set(kept);
  table.set(entry, keptAligned);
  const out = new Uint8Array(padded + table.length);
  out.set(unsigned);
  out.set(table, padded);
  setU32(out, pe.securityDirectoryOffset, padded);
  setU32(out, pe.securityDirectoryOffset + 4, table.length);
  setU32(out, pe.checkSumOffset, peChecksum(out, pe.checkSumOffset));
  return out;
}

/** Removes every signature (sbattach --remove): the image without its certificate table. */
export function unsignPe(image: Uint8Array): Uint8Array {
  const pe = parsePe(image);
  if (!pe.certificateTable || pe.securityDirectoryOffset === undefined) return image.slice();
  const { body } = splitCertificateTable(pe);
  const out = body.slice();
  setU32(out, pe.securityDirectoryOffset, 0);
  setU32(out, pe.securityDirectoryOffset + 4, 0);
  setU32(out, pe.checkSumOffset, peChecksum(out, pe.checkSumOffset));
  return out;
}

/**
 * The one door to @peculiar's ASN.1 schema packages (asn1-schema, asn1-x509, asn1-cms, asn1-pfx,
 * asn1-pkcs8): they declare the structures (RFC 5280, RFC 5652, RFC 7292, RFC 5208) once, and
 * AsnParser / AsnConvert decode and encode them.
 *
 * What stays ours, and why:
 *   - the strict DER gate ({@link parseDer} in der.ts) runs first: asn1js reads BER (indefinite
 *     lengths, non-minimal lengths), and a signature is only meaningful over one encoding;
 *   - the received bytes of everything hashed or signed (TBSCertificate, signed attributes,
 *     eContent, certificates in a bag, names compared byte-wise) are taken from that gate's
 *     tree, never from a re-encoding of a parsed object (STYLE.md habit 4);
 *   - failures inside the packages (plain Errors, TypeErrors) become typed ASN1_ERR_* errors
 *     carrying the offset and path of the element that failed to match.
 */
import { AsnAnyConverter, AsnConvert, AsnParser, type IAsnConvertible } from "@peculiar/asn1-schema";
import type { DerNode } from "./der.js";
import { asn1Error, type Asn1ErrorCode } from "./errors.js";

/** Decodes a DER node that passed the gate as schema `type`; a mismatch is `code` at the node. */
export function decodeAs<T>(node: DerNode, type: new () => T, code: Asn1ErrorCode, what: string): T {
  try {
    return AsnParser.parse(node.raw, type);
  } catch (e) {
    // The packages throw plain Errors (schema mismatch, converter failure) for malformed input.
    const why = e instanceof Error ? e.message : String(e);
    throw asn1Error(code, `${what} does not match its ASN.1 schema: ${why} at offset ${node.offset}`, {
      offset: node.offset,
      path: node.path,
    });
  }
}

/** DER of a schema object (asn1js writes definite lengths and minimal integers). */
export function encodeDer(value: object): Uint8Array {
  return new Uint8Array(AsnConvert.serialize(value));
}

/**
 * A DER element to be sent exactly as received, where a schema expects a parsed structure (a
 * certificate in a CMS bag, an issuer Name). The packages encode parsed fields anew, and that is
 * not always the same bytes: asn1js reads a GeneralizedTime of year 0001 as 1901 and writes it
 * back so, which would change a certificate and break its signature. asn1-schema hands any
 * object with toASN/fromASN to the encoder as is (IAsnConvertible); this one carries the BER
 * tree asn1js read from the bytes, which it writes back unchanged.
 */
class Received implements IAsnConvertible {
  constructor(private readonly der: Uint8Array) {}

  toASN(): ReturnType<IAsnConvertible["toASN"]> {
    return AsnAnyConverter.toASN(this.der.slice().buffer) as ReturnType<IAsnConvertible["toASN"]>;
  }

  fromASN(): this {
    throw new TypeError("Received is only ever encoded");
  }

  toSchema(): never {
    throw new TypeError("Received is only ever encoded");
  }
}

/**
 * `der` standing in for a schema structure of type T when encoding (see {@link Received}); the
 * caller must pass the DER of a T, checked by the gate and the schema first.
 */
export function received<T>(der: Uint8Array): T {
  return new Received(der) as unknown as T;
}

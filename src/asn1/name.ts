/**
 * X.501 Name (RFC 5280 section 4.1.2.4): `Name ::= SEQUENCE OF RelativeDistinguishedName`,
 * `RelativeDistinguishedName ::= SET OF AttributeTypeAndValue`.
 *
 * Readable form: attributes in encoding order joined by ", " (like `openssl x509 -nameopt
 * sep_comma_plus` without spaces around "="), multi-valued RDNs joined by "+", values escaped
 * RFC 4514-style (`\,` `\+` `\"` `\\` `\;` `\<` `\>` `\=`). Unknown attribute types print as dotted OIDs.
 * Names compare by their received DER bytes (RFC 5280 7.1 allows binary comparison for our uses).
 */
import { asn1Fail, der, expectTag, readOid, readString, sequence, Tag, type DerNode } from "./der.js";
import { Asn1Error } from "./errors.js";
import { OID } from "./oid.js";

const SHORT: Readonly<Record<string, string>> = {
  CN: OID.commonName,
  SN: OID.surname,
  serialNumber: OID.serialNumber,
  C: OID.countryName,
  L: OID.localityName,
  ST: OID.stateOrProvinceName,
  street: OID.streetAddress,
  O: OID.organizationName,
  OU: OID.organizationalUnitName,
  title: OID.title,
  GN: OID.givenName,
  DC: OID.domainComponent,
  emailAddress: OID.emailAddress,
};
const SHORT_BY_OID = new Map(Object.entries(SHORT).map(([k, v]) => [v, k]));

export interface NameAttribute {
  /** Short name (CN, O, ...) or dotted OID. */
  readonly type: string;
  readonly value: string;
}

/** A name as `"CN=Example, O=Org"`, or as RDNs (each an array of attributes, usually one). */
export type NameInput = string | readonly (NameAttribute | readonly NameAttribute[])[];

export interface ParsedName {
  /** The received DER bytes of the Name. */
  readonly raw: Uint8Array;
  readonly rdns: readonly (readonly NameAttribute[])[];
  /** Readable form, e.g. `CN=Microsoft Corporation UEFI CA 2011, O=Microsoft Corporation, ...`. */
  readonly text: string;
}

function escapeValue(v: string): string {
  let s = v.replace(/[\\,+"<>;=]/g, (c) => `\\${c}`);
  if (s.startsWith(" ") || s.startsWith("#")) s = `\\${s}`;
  if (s.endsWith(" ") && !s.endsWith("\\ ")) s = `${s.slice(0, -1)}\\ `;
  return s;
}

/** Decodes a Name node into readable attributes, keeping its raw bytes. */
export function decodeName(node: DerNode): ParsedName {
  expectTag(node, Tag.SEQUENCE, "Name");
  const rdns = node.children.map((rdn) => {
    expectTag(rdn, Tag.SET, "RelativeDistinguishedName");
    if (rdn.children.length === 0) asn1Fail("ASN1_ERR_INVALID_VALUE", "empty RDN", rdn.offset, rdn.path);
    return rdn.children.map((atv) => {
      const [t, v] = sequence(atv, 2) as [DerNode, DerNode];
      const oid = readOid(t);
      let value: string;
      try {
        value = readString(v);
      } catch (e) {
        if (!(e instanceof Asn1Error) || e.code !== "ASN1_ERR_UNEXPECTED_TAG") throw e;
        value = `#${Buffer.from(v.raw).toString("hex")}`; // RFC 4514 2.4 hex form for non-string values
      }
      return { type: SHORT_BY_OID.get(oid) ?? oid, value };
    });
  });
  const text = rdns.map((rdn) => rdn.map((a) => `${a.type}=${escapeValue(a.value)}`).join("+")).join(", ");
  return { raw: node.raw, rdns, text };
}

/** Parses `"CN=a, O=b+OU=c"` into RDNs. */
export function parseNameString(s: string): NameAttribute[][] {
  const rdns: NameAttribute[][] = [];
  let rdn: NameAttribute[] = [];
  let i = 0;
  const bad = (why: string): never => {
    throw new Asn1Error("ASN1_ERR_INVALID_NAME", `invalid name '${s}': ${why}`);
  };
  while (i < s.length) {
    while (s[i] === " ") i++;
    const eq = s.indexOf("=", i);
    if (eq < 0) bad("expected TYPE=value");
    const type = s.slice(i, eq).trim();
    if (!type) bad("empty attribute type");
    i = eq + 1;
    let value = "";
    let trailingEscaped = 0;
    for (; i < s.length; i++) {
      const c = s[i] as string;
      if (c === "\\") {
        const nx = s[i + 1];
        if (nx === undefined) bad("dangling backslash");
        value += nx;
        i++;
        trailingEscaped = value.length;
      } else if (c === "," || c === "+") break;
      else value += c;
    }
    // Unescaped trailing spaces are separators' padding, escaped ones are kept.
    let end = value.length;
    while (end > trailingEscaped && value[end - 1] === " ") end--;
    value = value.slice(0, end);
    rdn.push({ type, value });
    if (s[i] === "+") {
      i++;
      continue;
    }
    rdns.push(rdn);
    rdn = [];
    if (s[i] === ",") {
      i++;
      if (i >= s.length) bad("trailing comma");
    }
  }
  if (rdn.length) rdns.push(rdn);
  if (rdns.length === 0) bad("empty name");
  return rdns;
}

function attributeOid(type: string): string {
  const oid = SHORT[type] ?? (/^[0-2](\.\d+)+$/.test(type) ? type : undefined);
  if (!oid) throw new Asn1Error("ASN1_ERR_INVALID_NAME", `unknown attribute type '${type}'`);
  return oid;
}

function encodeValue(oid: string, value: string): Uint8Array {
  // RFC 5280 appendix A.1: countryName and serialNumber are PrintableString; emailAddress and
  // domainComponent are IA5String; everything else UTF8String (RFC 5280 4.1.2.4).
  if (oid === OID.countryName) {
    if (!/^[A-Z]{2}$/.test(value))
      throw new Asn1Error("ASN1_ERR_INVALID_NAME", `country '${value}' is not 2 letters`);
    return der.printable(value);
  }
  if (oid === OID.serialNumber && /^[A-Za-z0-9 '()+,\-./:=?]*$/.test(value)) return der.printable(value);
  if (oid === OID.emailAddress || oid === OID.domainComponent) return der.ia5(value);
  return der.utf8(value);
}

/** Encodes a Name deterministically (RDN order as given; members of a multi-valued RDN sorted). */
export function encodeName(input: NameInput): Uint8Array {
  const rdns: (readonly NameAttribute[])[] =
    typeof input === "string"
      ? parseNameString(input)
      : input.map((r) => (Array.isArray(r) ? (r as readonly NameAttribute[]) : [r as NameAttribute]));
  return der.sequence(
    ...rdns.map((rdn) =>
      der.setOf(
        ...rdn.map((a) => {
          const oid = attributeOid(a.type);
          return der.sequence(der.oid(oid), encodeValue(oid, a.value));
        }),
      ),
    ),
  );
}

/** The readable text of a Name's DER bytes. */
export function nameToString(node: DerNode): string {
  return decodeName(node).text;
}

/** First commonName of a parsed name, if any. */
export function commonName(name: ParsedName): string | undefined {
  for (const rdn of name.rdns) for (const a of rdn) if (a.type === "CN") return a.value;
  return undefined;
}

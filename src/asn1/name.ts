/**
 * X.501 Name (RFC 5280 section 4.1.2.4): `Name ::= SEQUENCE OF RelativeDistinguishedName`,
 * `RelativeDistinguishedName ::= SET OF AttributeTypeAndValue`.
 *
 * Readable form: attributes in encoding order joined by ", " (like `openssl x509 -nameopt
 * sep_comma_plus` without spaces around "="), multi-valued RDNs joined by "+", values escaped
 * RFC 4514-style (`\,` `\+` `\"` `\\` `\;` `\<` `\>` `\=`). Unknown attribute types print as dotted OIDs.
 * Names compare by their received DER bytes (RFC 5280 7.1 allows binary comparison for our uses).
 * The structure is @peculiar/asn1-x509's `Name`; the string syntax and the readable form are ours.
 */
import { AttributeTypeAndValue, AttributeValue, Name, RelativeDistinguishedName } from "@peculiar/asn1-x509";
import { compareBytes, toHex } from "../core/bytes.js";
import type { DerNode } from "./der.js";
import { asn1Error } from "./errors.js";
import { OID } from "./oid.js";
import { decodeAs, encodeDer } from "./schema.js";

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

/** The readable value of an attribute: its string, or RFC 4514 2.4 `#hex` for non-string values. */
function valueText(v: AttributeValue): string {
  return v.anyValue ? `#${toHex(new Uint8Array(v.anyValue))}` : v.toString();
}

/** Decodes a Name node into readable attributes, keeping its received bytes. */
export function decodeName(node: DerNode): ParsedName {
  const name = decodeAs(node, Name, "ASN1_ERR_INVALID_VALUE", "Name");
  const rdns = name.map((rdn) => {
    if (rdn.length === 0)
      throw asn1Error("ASN1_ERR_INVALID_VALUE", `empty RDN at offset ${node.offset}`, {
        offset: node.offset,
        path: node.path,
      });
    return rdn.map((atv) => ({ type: SHORT_BY_OID.get(atv.type) ?? atv.type, value: valueText(atv.value) }));
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
    throw asn1Error("ASN1_ERR_INVALID_NAME", `invalid name '${s}': ${why}`);
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
  if (!oid) throw asn1Error("ASN1_ERR_INVALID_NAME", `unknown attribute type '${type}'`);
  return oid;
}

function attributeValue(oid: string, value: string): AttributeValue {
  // RFC 5280 appendix A.1: countryName and serialNumber are PrintableString; emailAddress and
  // domainComponent are IA5String; everything else UTF8String (RFC 5280 4.1.2.4).
  if (oid === OID.countryName) {
    if (!/^[A-Z]{2}$/.test(value))
      throw asn1Error("ASN1_ERR_INVALID_NAME", `country '${value}' is not 2 letters`);
    return new AttributeValue({ printableString: value });
  }
  if (oid === OID.serialNumber && /^[A-Za-z0-9 '()+,\-./:=?]*$/.test(value))
    return new AttributeValue({ printableString: value });
  if (oid === OID.emailAddress || oid === OID.domainComponent) {
    if ([...value].some((c) => c.charCodeAt(0) > 0x7f))
      throw asn1Error("ASN1_ERR_INVALID_NAME", `'${value}' is not ASCII (IA5String)`);
    return new AttributeValue({ ia5String: value });
  }
  return new AttributeValue({ utf8String: value });
}

/** A Name as @peculiar/asn1-x509's structure (RDN order as given; members of a multi-valued RDN sorted). */
export function nameOf(input: NameInput): Name {
  const rdns: (readonly NameAttribute[])[] =
    typeof input === "string"
      ? parseNameString(input)
      : input.map((r) => (Array.isArray(r) ? (r as readonly NameAttribute[]) : [r as NameAttribute]));
  return new Name(
    rdns.map((rdn) => {
      const members = rdn.map((a) => {
        const oid = attributeOid(a.type);
        return new AttributeTypeAndValue({ type: oid, value: attributeValue(oid, a.value) });
      });
      // X.690 11.6: a SET OF is ordered by the encodings of its members.
      const keyed = members.map((m) => ({ m, der: encodeDer(m) }));
      keyed.sort((x, y) => compareBytes(x.der, y.der));
      return new RelativeDistinguishedName(keyed.map((k) => k.m));
    }),
  );
}

/** Encodes a Name deterministically (see {@link nameOf}). */
export function encodeName(input: NameInput): Uint8Array {
  return encodeDer(nameOf(input));
}

/** First commonName of a parsed name, if any. */
export function commonName(name: ParsedName): string | undefined {
  for (const rdn of name.rdns) for (const a of rdn) if (a.type === "CN") return a.value;
  return undefined;
}

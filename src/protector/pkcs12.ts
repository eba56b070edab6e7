/**
 * Guardian export/import as PKCS#12 (RFC 7292), with the modern algorithm choices of
 * OpenSSL 3: private keys in pkcs8ShroudedKeyBags (EncryptedPrivateKeyInfo, PBES2 =
 * PBKDF2-HMAC-SHA256 + AES-256-CBC, RFC 8018 §6.2), integrity by HMAC-SHA256 with the
 * PKCS#12 key derivation (RFC 7292 Appendix B.2, ID 3).
 *
 * Written: one unencrypted SafeContents with the two certificate bags and one with the two
 * shrouded key bags; friendlyName (PKCS#9, RFC 2985 §5.5.1) = "<name>" on the signing pair and
 * "<name> (encryption)" on the encryption pair; localKeyId = SHA-1 of the certificate, as
 * OpenSSL does. Read: the same, and what `openssl pkcs12 -export` writes by default (the
 * certificate SafeContents in PBES2 EncryptedData). Not supported: legacy PBE (RC2, 3DES,
 * SHA-1 PKCS#12 PBE), public-key integrity mode, BER indefinite lengths.
 *
 * The structures are @peculiar/asn1-pfx's (PFX, AuthenticatedSafe, SafeContents, SafeBag,
 * CertBag, MacData) and asn1-cms's (ContentInfo, EncryptedContentInfo); the input passes the
 * strict DER gate first. Ours: the PKCS#12 key derivation (the packages have none), the PBES2
 * parameter and EncryptedData declarations they lack, and the guardian mapping.
 */
import {
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  pbkdf2Sync,
  randomBytes,
  X509Certificate,
  type KeyObject,
} from "node:crypto";
import { ContentInfo, EncryptedContentInfo } from "@peculiar/asn1-cms";
import {
  AuthenticatedSafe,
  CertBag,
  MacData,
  PFX,
  PKCS12Attribute,
  SafeBag,
  SafeContents,
} from "@peculiar/asn1-pfx";
import { AsnBmpStringConverter, AsnProp, AsnPropTypes, OctetString } from "@peculiar/asn1-schema";
import { AlgorithmIdentifier } from "@peculiar/asn1-x509";
import { parseDer, Tag, type DerNode } from "../asn1/der.js";
import { isAsn1Error } from "../asn1/errors.js";
import { decodeAs, encodeDer } from "../asn1/schema.js";
import { secretsEqual } from "../core/bytes.js";
import { protectorError, isProtectorError } from "./errors.js";
import { checkGuardian, type Guardian } from "./guardian.js";

const OID = {
  data: "1.2.840.113549.1.7.1",
  encryptedData: "1.2.840.113549.1.7.6",
  keyBag: "1.2.840.113549.1.12.10.1.1",
  pkcs8ShroudedKeyBag: "1.2.840.113549.1.12.10.1.2",
  certBag: "1.2.840.113549.1.12.10.1.3",
  x509Certificate: "1.2.840.113549.1.9.22.1",
  friendlyName: "1.2.840.113549.1.9.20",
  localKeyId: "1.2.840.113549.1.9.21",
  sha256: "2.16.840.1.101.3.4.2.1",
  sha384: "2.16.840.1.101.3.4.2.2",
  sha512: "2.16.840.1.101.3.4.2.3",
  pbes2: "1.2.840.113549.1.5.13",
  pbkdf2: "1.2.840.113549.1.5.12",
  hmacWithSHA256: "1.2.840.113549.2.9",
  hmacWithSHA384: "1.2.840.113549.2.10",
  hmacWithSHA512: "1.2.840.113549.2.11",
  aes128cbc: "2.16.840.1.101.3.4.1.2",
  aes192cbc: "2.16.840.1.101.3.4.1.22",
  aes256cbc: "2.16.840.1.101.3.4.1.42",
} as const;

const MAC_HASHES: Record<string, { hash: "sha256" | "sha384" | "sha512"; u: number; v: number }> = {
  [OID.sha256]: { hash: "sha256", u: 32, v: 64 },
  [OID.sha384]: { hash: "sha384", u: 48, v: 128 },
  [OID.sha512]: { hash: "sha512", u: 64, v: 128 },
};
const PRFS: Record<string, "sha256" | "sha384" | "sha512"> = {
  [OID.hmacWithSHA256]: "sha256",
  [OID.hmacWithSHA384]: "sha384",
  [OID.hmacWithSHA512]: "sha512",
};
const CIPHERS: Record<string, { name: string; keyLength: number }> = {
  [OID.aes128cbc]: { name: "aes-128-cbc", keyLength: 16 },
  [OID.aes192cbc]: { name: "aes-192-cbc", keyLength: 24 },
  [OID.aes256cbc]: { name: "aes-256-cbc", keyLength: 32 },
};
/** Iteration counts above this are refused (a hostile file could otherwise stall the host). */
export const MAX_PKCS12_ITERATIONS = 1_000_000;
const DEFAULT_ITERATIONS = 10_000;

function fail(message: string, cause?: unknown): never {
  throw protectorError("PROTECTOR_ERR_PKCS12", message, {}, cause === undefined ? undefined : { cause });
}

/** RFC 7292 Appendix B.1: the password as a BMPString with a two-octet NUL terminator. */
function bmpPassword(password: string): Buffer {
  const out = Buffer.alloc(password.length * 2 + 2);
  for (let i = 0; i < password.length; i++) out.writeUInt16BE(password.charCodeAt(i), 2 * i);
  return out;
}

/** RFC 7292 Appendix B.2 key derivation, for n <= u (one block, as MAC keys need). */
export function pkcs12Kdf(
  hash: "sha256" | "sha384" | "sha512",
  u: number,
  v: number,
  password: string,
  salt: Uint8Array,
  id: number,
  iterations: number,
  n: number,
): Buffer {
  if (n > u)
    throw protectorError("PROTECTOR_ERR_INVALID_ARGUMENT", "PKCS#12 KDF output longer than one block");
  const fill = (src: Uint8Array) => {
    if (src.length === 0) return Buffer.alloc(0);
    const len = v * Math.ceil(src.length / v);
    const out = Buffer.alloc(len);
    for (let i = 0; i < len; i++) out[i] = src[i % src.length] as number;
    return out;
  };
  const p = bmpPassword(password);
  const input = Buffer.concat([Buffer.alloc(v, id), fill(salt), fill(p)]);
  let a = createHash(hash).update(input).digest();
  for (let i = 1; i < iterations; i++) a = createHash(hash).update(a).digest();
  input.fill(0);
  p.fill(0);
  return a.subarray(0, n);
}

/**
 * PKCS #7 EncryptedData (RFC 2315 section 13; RFC 5652 section 8), which @peculiar/asn1-cms does
 * not declare: `SEQUENCE { version INTEGER, encryptedContentInfo EncryptedContentInfo }`. The
 * decorators are applied as plain functions (the project compiles without experimentalDecorators).
 */
class EncryptedData {
  version = 0;
  encryptedContentInfo = new EncryptedContentInfo();
}
AsnProp({ type: AsnPropTypes.Integer })(EncryptedData.prototype, "version");
AsnProp({ type: EncryptedContentInfo })(EncryptedData.prototype, "encryptedContentInfo");

/**
 * PBES2-params and PBKDF2-params (RFC 8018 A.2, A.4), not declared by the installed packages;
 * only the `specified` salt choice is read (the other, otherSource, is reserved by RFC 8018).
 */
class Pbkdf2Params {
  salt = new OctetString();
  iterationCount = 0;
  keyLength?: number;
  prf?: AlgorithmIdentifier;
}
AsnProp({ type: OctetString })(Pbkdf2Params.prototype, "salt");
AsnProp({ type: AsnPropTypes.Integer })(Pbkdf2Params.prototype, "iterationCount");
AsnProp({ type: AsnPropTypes.Integer, optional: true })(Pbkdf2Params.prototype, "keyLength");
AsnProp({ type: AlgorithmIdentifier, optional: true })(Pbkdf2Params.prototype, "prf");

class Pbes2Params {
  keyDerivationFunc = new AlgorithmIdentifier();
  encryptionScheme = new AlgorithmIdentifier();
}
AsnProp({ type: AlgorithmIdentifier })(Pbes2Params.prototype, "keyDerivationFunc");
AsnProp({ type: AlgorithmIdentifier })(Pbes2Params.prototype, "encryptionScheme");

const ab = (b: Uint8Array): ArrayBuffer => b.slice().buffer;

/** PKCS12Attribute with fields set one by one: its constructor drops its parameters (asn1-pfx 2.11.1). */
function pkcs12Attribute(attrId: string, value: Uint8Array): PKCS12Attribute {
  const a = new PKCS12Attribute();
  a.attrId = attrId;
  a.attrValues = [ab(value)];
  return a;
}

function bagAttributes(friendlyName: string, localKeyId: Uint8Array): PKCS12Attribute[] {
  return [
    pkcs12Attribute(OID.friendlyName, encodeDer(AsnBmpStringConverter.toASN(friendlyName))),
    pkcs12Attribute(OID.localKeyId, encodeDer(new OctetString(localKeyId))),
  ];
}

function dataContentInfo(content: Uint8Array): ContentInfo {
  return new ContentInfo({ contentType: OID.data, content: ab(encodeDer(new OctetString(content))) });
}

export interface Pkcs12ExportOptions {
  /** PBKDF2 and MAC iterations (default 10,000). */
  readonly iterations?: number;
}

/** A guardian (certificates and private keys) as a PKCS#12 file protected by `password`. */
export function exportGuardianPkcs12(
  g: Guardian,
  password: string,
  opts: Pkcs12ExportOptions = {},
): Uint8Array {
  checkGuardian(g);
  const iterations = opts.iterations ?? DEFAULT_ITERATIONS;
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > MAX_PKCS12_ITERATIONS) {
    throw protectorError("PROTECTOR_ERR_INVALID_ARGUMENT", `iterations must be 1..${MAX_PKCS12_ITERATIONS}`);
  }
  const pairs = [
    { name: g.name, cert: g.signingCertificate, key: g.signingKey },
    { name: `${g.name} (encryption)`, cert: g.encryptionCertificate, key: g.encryptionKey },
  ];
  const certBags: SafeBag[] = [];
  const keyBags: SafeBag[] = [];
  for (const p of pairs) {
    const id = createHash("sha1").update(p.cert).digest();
    const bagAttrs = bagAttributes(p.name, id);
    const certBag = new CertBag({
      certId: OID.x509Certificate,
      certValue: ab(encodeDer(new OctetString(p.cert))),
    });
    certBags.push(
      new SafeBag({ bagId: OID.certBag, bagValue: ab(encodeDer(certBag)), bagAttributes: bagAttrs }),
    );
    // node writes EncryptedPrivateKeyInfo with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC).
    const epki = p.key.export({ type: "pkcs8", format: "der", cipher: "aes-256-cbc", passphrase: password });
    keyBags.push(
      new SafeBag({ bagId: OID.pkcs8ShroudedKeyBag, bagValue: ab(epki), bagAttributes: bagAttrs }),
    );
  }
  const authSafe = encodeDer(
    new AuthenticatedSafe([
      dataContentInfo(encodeDer(new SafeContents(certBags))),
      dataContentInfo(encodeDer(new SafeContents(keyBags))),
    ]),
  );
  const salt = randomBytes(16);
  const macKey = pkcs12Kdf("sha256", 32, 64, password, salt, 3, iterations, 32);
  const mac = createHmac("sha256", macKey).update(authSafe).digest();
  macKey.fill(0);
  const macData = new MacData({ macSalt: new OctetString(salt), iterations });
  // MacData made its DigestInfo (RFC 8017 A.2.4's, from @peculiar/asn1-rsa); fill that one in.
  macData.mac.digestAlgorithm = new AlgorithmIdentifier({ algorithm: OID.sha256, parameters: null });
  macData.mac.digest = new OctetString(mac);
  return encodeDer(new PFX({ version: 3, authSafe: dataContentInfo(authSafe), macData }));
}

function bounded(v: number, max: number, what: string): number {
  if (!Number.isSafeInteger(v) || v < 1 || v > max) fail(`${what} ${v} is outside 1..${max}`);
  return v;
}

/** `type` decoded from DER that passed the gate (typed ASN1_ERR_* on failure). */
function decode<T>(bytes: Uint8Array | ArrayBuffer, type: new () => T, what: string): T {
  return decodeAs(parseDer(new Uint8Array(bytes), what), type, "ASN1_ERR_INVALID_VALUE", what);
}

/** ContentInfo with id-data: the OCTET STRING contents inside [0]. */
function dataContent(ci: ContentInfo): Uint8Array {
  if (ci.contentType !== OID.data) fail("expected a data ContentInfo");
  return new Uint8Array(decode(ci.content, OctetString, "ContentInfo content").buffer);
}

/** RFC 8018 §6.2 PBES2 decryption (PBKDF2 + AES-CBC). */
function pbes2Decrypt(alg: AlgorithmIdentifier, ciphertext: Uint8Array, password: string): Buffer {
  if (alg.algorithm !== OID.pbes2 || !alg.parameters) fail("only PBES2 encryption is supported");
  const params = decode(alg.parameters, Pbes2Params, "PBES2-params");
  const kdf = params.keyDerivationFunc;
  if (kdf.algorithm !== OID.pbkdf2 || !kdf.parameters) fail("only PBKDF2 is supported");
  const kp = decode(kdf.parameters, Pbkdf2Params, "PBKDF2-params");
  const iterations = bounded(kp.iterationCount, MAX_PKCS12_ITERATIONS, "PBKDF2 iteration count");
  // RFC 8018 A.2: an absent prf means hmacWithSHA1, which is not accepted here.
  if (!kp.prf) fail("PBKDF2 with HMAC-SHA1 is not supported");
  const prf = PRFS[kp.prf.algorithm];
  if (!prf) fail(`PBKDF2 PRF ${kp.prf.algorithm} is not supported`);
  const scheme = params.encryptionScheme;
  const cipher = CIPHERS[scheme.algorithm];
  if (!cipher) fail(`cipher ${scheme.algorithm} is not supported`);
  if (!scheme.parameters) fail("AES-CBC without an IV");
  const iv = new Uint8Array(decode(scheme.parameters, OctetString, "AES-CBC IV").buffer);
  if (iv.length !== 16) fail("AES-CBC IV is not 16 octets");
  const key = pbkdf2Sync(
    Buffer.from(password, "utf8"),
    new Uint8Array(kp.salt.buffer),
    iterations,
    cipher.keyLength,
    prf,
  );
  try {
    const d = createDecipheriv(cipher.name, key, iv);
    return Buffer.concat([d.update(ciphertext), d.final()]);
  } catch (e) {
    return fail("cannot decrypt the PKCS#12 contents (wrong password?)", e);
  } finally {
    key.fill(0);
  }
}

interface Bag {
  readonly type: string;
  /** bagValue as received (the element inside [0] EXPLICIT). */
  readonly value: Uint8Array;
  readonly friendlyName?: string;
  readonly localKeyId?: string;
}

/** The first value of a bag attribute as a DER node, when it has one. */
function firstValue(attrs: readonly PKCS12Attribute[] | undefined, oid: string): DerNode | undefined {
  const v = attrs?.find((a) => a.attrId === oid)?.attrValues[0];
  return v ? parseDer(new Uint8Array(v), oid) : undefined;
}

function readBags(safeContents: Uint8Array): Bag[] {
  const bags = decode(safeContents, SafeContents, "SafeContents");
  if (bags.length > 64) fail(`${bags.length} bags in one SafeContents (at most 64)`);
  return bags.map((bag) => {
    const name = firstValue(bag.bagAttributes, OID.friendlyName);
    const keyId = firstValue(bag.bagAttributes, OID.localKeyId);
    const friendlyName =
      name?.tag === Tag.BMPString && name.content.length % 2 === 0
        ? Buffer.from(name.content).swap16().toString("utf16le")
        : undefined;
    const localKeyId =
      keyId?.tag === Tag.OCTET_STRING ? Buffer.from(keyId.content).toString("hex") : undefined;
    return {
      type: bag.bagId,
      value: new Uint8Array(bag.bagValue),
      ...(friendlyName !== undefined ? { friendlyName } : {}),
      ...(localKeyId !== undefined ? { localKeyId } : {}),
    };
  });
}

function spkiOf(key: KeyObject): Buffer {
  return (key.type === "private" ? createPublicKey(key) : key).export({ type: "spki", format: "der" });
}

export interface Pkcs12Contents {
  readonly certificates: readonly { readonly der: Uint8Array; readonly friendlyName?: string }[];
  readonly privateKeys: readonly KeyObject[];
}

/**
 * Reads the certificates and private keys of a PKCS#12 file. The MAC is checked first, so a
 * wrong password or an altered file fails (PROTECTOR_ERR_PKCS12) before anything is decrypted.
 */
export function readPkcs12(bytes: Uint8Array, password: string): Pkcs12Contents {
  try {
    return readInner(bytes, password);
  } catch (e) {
    if (isProtectorError(e)) throw e;
    if (isAsn1Error(e)) return fail(`malformed PKCS#12: ${e.message}`, e);
    throw e;
  }
}

function readInner(bytes: Uint8Array, password: string): Pkcs12Contents {
  const pfx = decodeAs(
    parseDer(bytes, "PFX", { maxDepth: 32, maxNodes: 100_000 }),
    PFX,
    "ASN1_ERR_INVALID_VALUE",
    "PFX",
  );
  if (pfx.version !== 3) fail("PFX version is not 3");
  const authSafe = dataContent(pfx.authSafe);
  // The schema makes an empty MacData when the file has none: no MAC is a MAC that cannot match.
  const macData = pfx.macData;
  const h = MAC_HASHES[macData.mac.digestAlgorithm.algorithm];
  if (!macData.mac.digestAlgorithm.algorithm)
    fail("the PKCS#12 file has no MAC (password integrity) and is refused");
  if (!h) fail(`MAC hash ${macData.mac.digestAlgorithm.algorithm} is not supported (SHA-1 included)`);
  const iterations = bounded(macData.iterations, MAX_PKCS12_ITERATIONS, "MAC iteration count");
  const macKey = pkcs12Kdf(
    h.hash,
    h.u,
    h.v,
    password,
    new Uint8Array(macData.macSalt.buffer),
    3,
    iterations,
    h.u,
  );
  const mac = createHmac(h.hash, macKey).update(authSafe).digest();
  macKey.fill(0);
  if (!secretsEqual(mac, new Uint8Array(macData.mac.digest.buffer))) {
    fail("the PKCS#12 MAC does not verify: wrong password, or the file was altered");
  }

  const bags: Bag[] = [];
  const safes = decode(authSafe, AuthenticatedSafe, "AuthenticatedSafe");
  if (safes.length < 1 || safes.length > 16)
    fail(`${safes.length} ContentInfos in AuthenticatedSafe (1..16)`);
  for (const ci of safes) {
    if (ci.contentType === OID.data) {
      bags.push(...readBags(dataContent(ci)));
    } else if (ci.contentType === OID.encryptedData) {
      const ed = decode(ci.content, EncryptedData, "EncryptedData");
      if (ed.version !== 0) fail("EncryptedData version is not 0");
      const eci = ed.encryptedContentInfo;
      const encrypted = eci.encryptedContent?.value;
      if (!encrypted) fail("encryptedContent is not [0] IMPLICIT OCTET STRING");
      bags.push(
        ...readBags(pbes2Decrypt(eci.contentEncryptionAlgorithm, new Uint8Array(encrypted.buffer), password)),
      );
    } else {
      fail(`ContentInfo type ${ci.contentType} is not supported`);
    }
  }

  const certs = bags
    .filter((b) => b.type === OID.certBag)
    .map((b) => {
      const bag = decode(b.value, CertBag, "CertBag");
      if (bag.certId !== OID.x509Certificate) fail("certificate bag is not X.509");
      return {
        der: new Uint8Array(decode(bag.certValue, OctetString, "certValue").buffer),
        name: b.friendlyName,
      };
    });
  const keys = bags
    .filter((b) => b.type === OID.pkcs8ShroudedKeyBag || b.type === OID.keyBag)
    .map((b) => {
      try {
        return b.type === OID.keyBag
          ? createPrivateKey({ key: Buffer.from(b.value), format: "der", type: "pkcs8" })
          : createPrivateKey({
              key: Buffer.from(b.value),
              format: "der",
              type: "pkcs8",
              passphrase: password,
            });
      } catch (e) {
        return fail("a private key in the PKCS#12 file cannot be read", e);
      }
    });
  return {
    certificates: certs.map((c) => ({
      der: c.der,
      ...(c.name !== undefined ? { friendlyName: c.name } : {}),
    })),
    privateKeys: keys,
  };
}

/**
 * Reads a guardian from PKCS#12: two certificates and their two private keys. The signing
 * certificate is the self-signed one; the name is its friendlyName (or `opts.name`).
 */
export function importGuardianPkcs12(
  bytes: Uint8Array,
  password: string,
  opts: { readonly name?: string } = {},
): Guardian {
  const { certificates, privateKeys: keys } = readPkcs12(bytes, password);
  const certs = certificates.map((c) => ({ der: c.der, name: c.friendlyName }));
  if (certs.length !== 2 || keys.length !== 2) {
    fail(`a guardian PKCS#12 file holds 2 certificates and 2 keys; found ${certs.length} and ${keys.length}`);
  }
  // The signing certificate is the self-signed one.
  const parsed = certs.map((c) => {
    try {
      return new X509Certificate(Buffer.from(c.der));
    } catch (e) {
      return fail("a certificate in the PKCS#12 file cannot be parsed", e);
    }
  });
  const signingIdx = parsed.findIndex((c) => {
    try {
      return c.issuer === c.subject && c.verify(c.publicKey);
    } catch {
      return false;
    }
  });
  if (signingIdx < 0) fail("no self-signed signing certificate in the PKCS#12 file");
  const signing = certs[signingIdx] as (typeof certs)[number];
  const encryption = certs[1 - signingIdx] as (typeof certs)[number];
  const signingSpki = spkiOf((parsed[signingIdx] as X509Certificate).publicKey);
  const signingKey = keys.find((k) => spkiOf(k).equals(signingSpki));
  const encryptionKey = keys.find((k) => k !== signingKey);
  if (!signingKey || !encryptionKey) fail("no private key matches the signing certificate");
  const name = opts.name ?? signing.name;
  if (!name) fail("the PKCS#12 file does not name the guardian (friendlyName); pass a name");
  const g: Guardian = {
    name,
    signingCertificate: signing.der,
    encryptionCertificate: encryption.der,
    signingKey,
    encryptionKey,
  };
  checkGuardian(g);
  return g;
}

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
 */
import {
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  pbkdf2Sync,
  randomBytes,
  timingSafeEqual,
  X509Certificate,
  type KeyObject,
} from "node:crypto";
import {
  der,
  parseDer,
  readInteger,
  readOctetString,
  readOid,
  sequence,
  isContext,
  type DerNode,
} from "../asn1/der.js";
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

function bagAttributes(friendlyName: string, localKeyId: Uint8Array): Uint8Array {
  return der.setOf(
    der.sequence(der.oid(OID.friendlyName), der.set(der.bmp(friendlyName))),
    der.sequence(der.oid(OID.localKeyId), der.set(der.octetString(localKeyId))),
  );
}

function dataContentInfo(content: Uint8Array): Uint8Array {
  return der.sequence(der.oid(OID.data), der.explicit(0, der.octetString(content)));
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
  const certBags: Uint8Array[] = [];
  const keyBags: Uint8Array[] = [];
  for (const p of pairs) {
    const id = createHash("sha1").update(p.cert).digest();
    const attrs = bagAttributes(p.name, id);
    certBags.push(
      der.sequence(
        der.oid(OID.certBag),
        der.explicit(0, der.sequence(der.oid(OID.x509Certificate), der.explicit(0, der.octetString(p.cert)))),
        attrs,
      ),
    );
    // node writes EncryptedPrivateKeyInfo with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC).
    const epki = p.key.export({ type: "pkcs8", format: "der", cipher: "aes-256-cbc", passphrase: password });
    keyBags.push(der.sequence(der.oid(OID.pkcs8ShroudedKeyBag), der.explicit(0, epki), attrs));
  }
  const authSafe = der.sequence(
    dataContentInfo(der.sequence(...certBags)),
    dataContentInfo(der.sequence(...keyBags)),
  );
  const salt = randomBytes(16);
  const macKey = pkcs12Kdf("sha256", 32, 64, password, salt, 3, iterations, 32);
  const mac = createHmac("sha256", macKey).update(authSafe).digest();
  macKey.fill(0);
  return der.sequence(
    der.integer(3),
    dataContentInfo(authSafe),
    der.sequence(
      der.sequence(der.sequence(der.oid(OID.sha256), der.null()), der.octetString(mac)),
      der.octetString(salt),
      der.integer(iterations),
    ),
  );
}

function smallInt(node: DerNode, max: number, what: string): number {
  const v = readInteger(node);
  if (v < 1n || v > BigInt(max)) fail(`${what} ${v} is outside 1..${max}`);
  return Number(v);
}

/** The one element inside a [0] EXPLICIT tag. */
function explicit0(node: DerNode, what: string): DerNode {
  const inner = node.children[0];
  if (!isContext(node, 0) || !node.constructed || node.children.length !== 1 || !inner)
    fail(`${what} is not [0] EXPLICIT`);
  return inner;
}

/** ContentInfo with id-data: the OCTET STRING inside [0]. */
function dataContent(ci: DerNode): Uint8Array {
  const [type, content] = sequence(ci, 2) as [DerNode, DerNode];
  if (readOid(type) !== OID.data) fail("expected a data ContentInfo");
  return readOctetString(explicit0(content, "ContentInfo content"));
}

/** RFC 8018 §6.2 PBES2 decryption (PBKDF2 + AES-CBC). */
function pbes2Decrypt(alg: DerNode, ciphertext: Uint8Array, password: string): Buffer {
  const [oid, params] = sequence(alg, 2) as [DerNode, DerNode];
  if (readOid(oid) !== OID.pbes2) fail("only PBES2 encryption is supported");
  const [kdf, scheme] = sequence(params, 2) as [DerNode, DerNode];
  const [kdfOid, kdfParams] = sequence(kdf, 2) as [DerNode, DerNode];
  if (readOid(kdfOid) !== OID.pbkdf2) fail("only PBKDF2 is supported");
  const kp = sequence(kdfParams, 2, 4);
  const salt = readOctetString(kp[0] as DerNode);
  const iterations = smallInt(kp[1] as DerNode, MAX_PKCS12_ITERATIONS, "PBKDF2 iteration count");
  let prf: "sha256" | "sha384" | "sha512" | undefined;
  for (const extra of kp.slice(2)) {
    if (extra.tag === 0x02) continue; // keyLength: implied by the cipher
    const prfOid = readOid(sequence(extra, 1, 2)[0] as DerNode);
    prf = PRFS[prfOid];
    if (!prf) fail(`PBKDF2 PRF ${prfOid} is not supported`);
  }
  // RFC 8018 A.2: an absent prf means hmacWithSHA1, which is not accepted here.
  if (!prf) fail("PBKDF2 with HMAC-SHA1 is not supported");
  const [cipherOid, iv] = sequence(scheme, 2) as [DerNode, DerNode];
  const cipherId = readOid(cipherOid);
  const cipher = CIPHERS[cipherId];
  if (!cipher) fail(`cipher ${cipherId} is not supported`);
  const ivBytes = readOctetString(iv);
  if (ivBytes.length !== 16) fail("AES-CBC IV is not 16 octets");
  const key = pbkdf2Sync(Buffer.from(password, "utf8"), salt, iterations, cipher.keyLength, prf);
  try {
    const d = createDecipheriv(cipher.name, key, ivBytes);
    return Buffer.concat([d.update(ciphertext), d.final()]);
  } catch (e) {
    return fail("cannot decrypt the PKCS#12 contents (wrong password?)", e);
  } finally {
    key.fill(0);
  }
}

interface Bag {
  readonly type: string;
  readonly value: DerNode;
  readonly friendlyName?: string;
  readonly localKeyId?: string;
}

function readBags(safeContents: Uint8Array): Bag[] {
  const root = parseDer(safeContents, "SafeContents");
  return sequence(root, 0, 64).map((bag) => {
    const parts = sequence(bag, 2, 3);
    const type = readOid(parts[0] as DerNode);
    const value = explicit0(parts[1] as DerNode, "SafeBag value");
    let friendlyName: string | undefined;
    let localKeyId: string | undefined;
    for (const attr of parts[2]?.children ?? []) {
      const [aOid, aValues] = sequence(attr, 2) as [DerNode, DerNode];
      const first = aValues.children[0];
      if (!first) continue;
      const a = readOid(aOid);
      if (a === OID.friendlyName && first.tag === 0x1e && first.content.length % 2 === 0) {
        friendlyName = Buffer.from(first.content).swap16().toString("utf16le");
      } else if (a === OID.localKeyId && first.tag === 0x04) {
        localKeyId = Buffer.from(first.content).toString("hex");
      }
    }
    return {
      type,
      value,
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
    if (e instanceof Error && "code" in e && String((e as { code: unknown }).code).startsWith("ASN1_ERR_")) {
      return fail(`malformed PKCS#12: ${e.message}`, e);
    }
    throw e;
  }
}

function readInner(bytes: Uint8Array, password: string): Pkcs12Contents {
  const pfx = parseDer(bytes, "PFX", { maxDepth: 32, maxNodes: 100_000 });
  const [version, authSafeCi, macData] = sequence(pfx, 2, 3) as [DerNode, DerNode, DerNode | undefined];
  if (readInteger(version) !== 3n) fail("PFX version is not 3");
  const authSafe = dataContent(authSafeCi);
  if (!macData) fail("the PKCS#12 file has no MAC (password integrity) and is refused");
  const [digestInfo, macSalt, macIter] = sequence(macData, 2, 3) as [DerNode, DerNode, DerNode | undefined];
  const [digestAlg, digest] = sequence(digestInfo, 2) as [DerNode, DerNode];
  const hashOid = readOid(sequence(digestAlg, 1, 2)[0] as DerNode);
  const h = MAC_HASHES[hashOid];
  if (!h) fail(`MAC hash ${hashOid} is not supported (SHA-1 included)`);
  const iterations = macIter ? smallInt(macIter, MAX_PKCS12_ITERATIONS, "MAC iteration count") : 1;
  const macKey = pkcs12Kdf(h.hash, h.u, h.v, password, readOctetString(macSalt), 3, iterations, h.u);
  const mac = createHmac(h.hash, macKey).update(authSafe).digest();
  macKey.fill(0);
  const expected = readOctetString(digest);
  if (expected.length !== mac.length || !timingSafeEqual(mac, expected)) {
    fail("the PKCS#12 MAC does not verify: wrong password, or the file was altered");
  }

  const bags: Bag[] = [];
  for (const ci of sequence(parseDer(authSafe, "AuthenticatedSafe"), 1, 16)) {
    const type = readOid(sequence(ci, 2)[0] as DerNode);
    if (type === OID.data) {
      bags.push(...readBags(dataContent(ci)));
    } else if (type === OID.encryptedData) {
      const content = explicit0(ci.children[1] as DerNode, "EncryptedData content");
      const [ver, eci] = sequence(content, 2, 3) as [DerNode, DerNode];
      if (readInteger(ver) !== 0n) fail("EncryptedData version is not 0");
      const [, alg, encrypted] = sequence(eci, 3) as [DerNode, DerNode, DerNode];
      if (!isContext(encrypted, 0) || encrypted.constructed)
        fail("encryptedContent is not [0] IMPLICIT OCTET STRING");
      bags.push(...readBags(pbes2Decrypt(alg, encrypted.content, password)));
    } else {
      fail(`ContentInfo type ${type} is not supported`);
    }
  }

  const certs = bags
    .filter((b) => b.type === OID.certBag)
    .map((b) => {
      const [certType, certValue] = sequence(b.value, 2) as [DerNode, DerNode];
      if (readOid(certType) !== OID.x509Certificate) fail("certificate bag is not X.509");
      return {
        der: new Uint8Array(readOctetString(explicit0(certValue, "certValue"))),
        name: b.friendlyName,
      };
    });
  const keys = bags
    .filter((b) => b.type === OID.pkcs8ShroudedKeyBag || b.type === OID.keyBag)
    .map((b) => {
      try {
        return b.type === OID.keyBag
          ? createPrivateKey({ key: Buffer.from(b.value.raw), format: "der", type: "pkcs8" })
          : createPrivateKey({
              key: Buffer.from(b.value.raw),
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

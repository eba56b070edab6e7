/**
 * Signed variable updates (EFI_VARIABLE_AUTHENTICATION_2, UEFI 2.10 section 8.2.2) whose PKCS #7
 * SignerInfo does or does not carry authenticatedAttributes, for deciding them by the firmware
 * oracle (test/helpers/uefi-authvar-oracle.ts) and checking our verdict against edk2's.
 *
 * The SignedData is assembled here byte by byte, independently of src/asn1/cms.ts (the code under
 * test), the way go-uefi's pkcs7.SignPKCS7 does it: a bare SignedData (the outer ContentInfo
 * stripped: edk2's VerifyTimeBasedPayload looks for the SHA-256 OID at the fixed offset 13),
 * version 1, digestAlgorithms {SHA-256}, contentInfo id-data without content (detached), the
 * signer's certificate, one SignerInfo. Two cases come from the real `openssl cms -sign`
 * (with and without `-noattr`). Every case appends (EFI_VARIABLE_APPEND_WRITE) one
 * EFI_SIGNATURE_LIST with a SHA-256 entry unique to the case to db, so the db edk2 leaves is the
 * list of the cases it accepted, in order; appends skip the timestamp ordering check (section
 * 8.2.2), so the cases do not depend on each other.
 */
import { createHash, createPrivateKey, sign, type KeyObject } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseSignedData } from "../../src/asn1/cms.js";
import { parseCertificate } from "../../src/asn1/x509.js";
import { encodeAuthentication2, signedPayload } from "../../src/uefi/auth-variable.js";
import { BULWARK_OWNER_GUID, Guids, type Guid } from "../../src/uefi/guid.js";
import { encodeSignatureDatabase, sha256List, x509List } from "../../src/uefi/siglist.js";
import { createEmptyVarStore, encodeVarStore, parseVarStore, setVariable } from "../../src/uefi/varstore.js";
import {
  Attr,
  NV_BS_ATTRS,
  SECURE_BOOT_DB_ATTRS,
  efiTimeFromDate,
  type EfiTime,
} from "../../src/uefi/variables.js";
import { runTool, tempDir } from "./uefi-varstore-fixtures.js";

/** The variable every case updates: db, which a KEK (or the PK) may sign for. */
export const TARGET = "db";
export const DB_GUID: Guid = Guids.EFI_IMAGE_SECURITY_DATABASE_GUID;
/** NV | BS | RT | TIME_BASED_AUTHENTICATED_WRITE_ACCESS | APPEND_WRITE (0x67). */
export const CASE_ATTRS = SECURE_BOOT_DB_ATTRS | Attr.EFI_VARIABLE_APPEND_WRITE;
export const CASE_TIME: EfiTime = efiTimeFromDate(new Date("2026-06-01T12:00:00Z"));

export interface CaseKey {
  readonly key: KeyObject;
  readonly keyPem: string;
  readonly cert: Uint8Array;
}

export interface CaseKeys {
  readonly pk: CaseKey;
  readonly kek: CaseKey;
  readonly stranger: CaseKey;
  /** A leaf certificate the PK issued (not itself in PK). */
  readonly pkLeaf: CaseKey;
  /** A leaf certificate the KEK issued (not itself in KEK). */
  readonly kekLeaf: CaseKey;
}

/** Who issues each test certificate (undefined: self-signed). */
export const KEY_ISSUERS: Readonly<Record<keyof CaseKeys, keyof CaseKeys | undefined>> = {
  pk: undefined,
  kek: undefined,
  stranger: undefined,
  pkLeaf: "pk",
  kekLeaf: "kek",
};

export type KeyName = keyof CaseKeys;

/** Reads the recorded test keys of a vector folder (`<name>.key.pem`, `<name>.crt.der`). */
export function readCaseKeys(dir: string): CaseKeys {
  const one = (n: KeyName) => {
    const keyPem = readFileSync(path.join(dir, `${n}.key.pem`), "utf8");
    return {
      key: createPrivateKey(keyPem),
      keyPem,
      cert: new Uint8Array(readFileSync(path.join(dir, `${n}.crt.der`))),
    };
  };
  return {
    pk: one("pk"),
    kek: one("kek"),
    stranger: one("stranger"),
    pkLeaf: one("pkLeaf"),
    kekLeaf: one("kekLeaf"),
  };
}

/**
 * The NVRAM every case is judged against: PK and KEK enrolled (user mode, so edk2 verifies every
 * update), no db (the first accepted case creates it), SecureBootEnable = 0 so the guest's shim
 * boots without a db (image verification off; variable authentication is not affected by it).
 */
export function caseVarStore(keys: CaseKeys): Uint8Array {
  let s = parseVarStore(createEmptyVarStore("4m"));
  s = setVariable(s, {
    name: "PK",
    guid: Guids.EFI_GLOBAL_VARIABLE,
    attributes: SECURE_BOOT_DB_ATTRS,
    data: encodeSignatureDatabase([x509List(keys.pk.cert, BULWARK_OWNER_GUID)]),
  });
  s = setVariable(s, {
    name: "KEK",
    guid: Guids.EFI_GLOBAL_VARIABLE,
    attributes: SECURE_BOOT_DB_ATTRS,
    data: encodeSignatureDatabase([x509List(keys.kek.cert, BULWARK_OWNER_GUID)]),
  });
  s = setVariable(s, {
    name: "SecureBootEnable",
    guid: Guids.EFI_SECURE_BOOT_ENABLE_DISABLE,
    attributes: NV_BS_ATTRS,
    data: new Uint8Array([0]),
  });
  s = setVariable(s, {
    name: "CustomMode",
    guid: Guids.EFI_CUSTOM_MODE_ENABLE_GUID,
    attributes: NV_BS_ATTRS,
    data: new Uint8Array([0]),
  });
  return encodeVarStore(s);
}

// ---------------------------------------------------------------------------------------------
// DER, by hand (X.690 definite lengths)

function lengthBytes(n: number): number[] {
  if (n < 0x80) return [n];
  if (n < 0x100) return [0x81, n];
  if (n < 0x10000) return [0x82, n >> 8, n & 0xff];
  throw new Error(`length ${n} too large for a test vector`);
}

export function tlv(tag: number, ...parts: Uint8Array[]): Uint8Array {
  const body = Buffer.concat(parts);
  return new Uint8Array(Buffer.concat([Buffer.from([tag, ...lengthBytes(body.length)]), body]));
}

const hex = (h: string) => new Uint8Array(Buffer.from(h.replace(/\s+/g, ""), "hex"));
const SEQ = 0x30;
const SET = 0x31;
const OCTETS = 0x04;
const OID_DATA = hex("06092a864886f70d010701");
const OID_SIGNED_DATA = hex("06092a864886f70d010702");
const OID_SHA256 = hex("0609608648016503040201");
const OID_SHA384 = hex("0609608648016503040202");
const OID_RSA = hex("06092a864886f70d010101");
const OID_CONTENT_TYPE = hex("06092a864886f70d010903");
const OID_MESSAGE_DIGEST = hex("06092a864886f70d010904");
const OID_SIGNING_TIME = hex("06092a864886f70d010905");
const NULL = hex("0500");
const INT1 = hex("020101");
const digest = (h: string, b: Uint8Array) => new Uint8Array(createHash(h).update(b).digest());
const sha256 = (b: Uint8Array) => digest("sha256", b);

const attr = (oid: Uint8Array, ...values: Uint8Array[]) => tlv(SEQ, oid, tlv(SET, ...values));
export const contentTypeAttr = (type: Uint8Array = OID_DATA) => attr(OID_CONTENT_TYPE, type);
export const messageDigestAttr = (...digests: Uint8Array[]) =>
  attr(OID_MESSAGE_DIGEST, ...digests.map((d) => tlv(OCTETS, d)));
/** signingTime as UTCTime (RFC 5652 11.3), fixed so the vector is reproducible. */
export const signingTimeAttr = () => attr(OID_SIGNING_TIME, tlv(0x17, Buffer.from("260601120000Z")));

export interface SignerInfoOptions {
  /** The bytes the update's signature is meant to cover (section 8.2.2 step 1). */
  readonly payload: Uint8Array;
  readonly signer: { readonly key: KeyObject; readonly cert: Uint8Array };
  /** Attributes in the order they are sent; undefined → no authenticatedAttributes. */
  readonly attrs?: readonly Uint8Array[];
  /**
   * What the RSA signature is made over: "set" (RFC 5652 5.4: the attributes as sent, with the
   * SET OF tag), "implicit" (their [0] IMPLICIT encoding, a classic mistake), "payload".
   * Default: "set" with attributes, "payload" without.
   */
  readonly signOver?: "set" | "implicit" | "payload";
  /** SignerInfo.digestAlgorithm and the signature's hash; default sha256. */
  readonly hash?: "sha256" | "sha384";
  /** How the signer is named: issuerAndSerialNumber (PKCS #7, default) or CMS's [0] subjectKeyIdentifier (version 3). */
  readonly sid?: "issuerAndSerialNumber" | "subjectKeyIdentifier";
}

/** One SignerInfo (RFC 2315 9.2), version 1, issuerAndSerialNumber, rsaEncryption. */
export function signerInfo(o: SignerInfoOptions): Uint8Array {
  const cert = parseCertificate(o.signer.cert);
  const attrsBody = o.attrs ? Buffer.concat(o.attrs) : undefined;
  const over = o.signOver ?? (attrsBody ? "set" : "payload");
  const signed =
    over === "payload" ? o.payload : tlv(over === "set" ? SET : 0xa0, attrsBody ?? new Uint8Array(0));
  const hash = o.hash ?? "sha256";
  const signature = new Uint8Array(sign(hash, signed, o.signer.key));
  const ski = o.sid === "subjectKeyIdentifier";
  if (ski && !cert.subjectKeyId) throw new Error("the signer certificate has no subjectKeyIdentifier");
  return tlv(
    SEQ,
    ski ? hex("020103") : INT1,
    ski ? tlv(0x80, cert.subjectKeyId as Uint8Array) : tlv(SEQ, cert.issuer.raw, tlv(0x02, cert.serialRaw)),
    tlv(SEQ, hash === "sha256" ? OID_SHA256 : OID_SHA384, NULL),
    ...(attrsBody ? [tlv(0xa0, attrsBody)] : []),
    tlv(SEQ, OID_RSA, NULL),
    tlv(OCTETS, signature),
  );
}

/** A bare DER SignedData (go-uefi's layout): digestAlgorithms {SHA-256}, the given signers. */
export function handSignedData(signerInfos: readonly Uint8Array[], certificates: readonly Uint8Array[]) {
  return tlv(
    SEQ,
    INT1,
    tlv(SET, tlv(SEQ, OID_SHA256, NULL)),
    tlv(SEQ, OID_DATA),
    tlv(0xa0, ...certificates),
    tlv(SET, ...signerInfos),
  );
}

/** One signer (the usual case): its SignerInfo and its certificate. */
const oneSigner = (o: SignerInfoOptions) => handSignedData([signerInfo(o)], [o.signer.cert]);

/** `openssl cms -sign -binary` over the payload: its DER ContentInfo(SignedData). */
function opensslCms(payload: Uint8Array, signer: { keyPem: string; cert: Uint8Array }, noattr: boolean) {
  const { dir, cleanup } = tempDir("bulwark-authvar-");
  try {
    const f = (n: string) => path.join(dir, n);
    writeFileSync(f("payload.bin"), payload);
    writeFileSync(f("key.pem"), signer.keyPem, { mode: 0o600 });
    writeFileSync(f("cert.der"), signer.cert);
    runTool("openssl", ["x509", "-inform", "DER", "-in", f("cert.der"), "-out", f("cert.pem")]);
    runTool("openssl", [
      "cms",
      "-sign",
      "-binary",
      "-md",
      "sha256",
      ...(noattr ? ["-noattr"] : []),
      "-in",
      f("payload.bin"),
      "-signer",
      f("cert.pem"),
      "-inkey",
      f("key.pem"),
      "-outform",
      "DER",
      "-out",
      f("sig.der"),
    ]);
    return new Uint8Array(readFileSync(f("sig.der")));
  } finally {
    cleanup();
  }
}

/** go-uefi's step after signing: unwrap the outer ContentInfo, keep the SignedData bytes. */
const unwrapContentInfo = (der: Uint8Array) => parseSignedData(der).raw;

export interface CaseInput {
  readonly data: Uint8Array;
  readonly payload: Uint8Array;
  readonly keys: CaseKeys;
}

export interface CaseDefinition {
  readonly id: string;
  readonly description: string;
  /** Returns AuthInfo.CertData and the data that follows the descriptor (tampered cases differ). */
  readonly build: (c: CaseInput) => { certData: Uint8Array; data?: Uint8Array };
}

/**
 * The cases, each with one sentence saying what it is. Order does not matter to the oracle: a
 * refused update leaves nothing behind, an accepted one only appends its own entry.
 */
export const CASES: readonly CaseDefinition[] = [
  {
    id: "openssl-noattr",
    description: "openssl cms -sign -noattr, ContentInfo stripped: no authenticatedAttributes (as sbvarsign)",
    build: (c) => ({ certData: unwrapContentInfo(opensslCms(c.payload, c.keys.kek, true)) }),
  },
  {
    id: "openssl-attrs",
    description:
      "openssl cms -sign (default attributes: contentType, signingTime, smimeCapabilities, messageDigest), ContentInfo stripped",
    build: (c) => ({ certData: unwrapContentInfo(opensslCms(c.payload, c.keys.kek, false)) }),
  },
  {
    id: "gouefi-attrs",
    description:
      "go-uefi layout: authenticatedAttributes contentType id-data + messageDigest, signed as a SET",
    build: (c) => ({
      certData: oneSigner({
        payload: c.payload,
        signer: c.keys.kek,
        attrs: [contentTypeAttr(), messageDigestAttr(sha256(c.payload))],
      }),
    }),
  },
  {
    id: "attrs-signingtime-unsorted",
    description:
      "contentType, messageDigest, signingTime in that (non-DER) order; signature over the attributes as sent",
    build: (c) => ({
      certData: oneSigner({
        payload: c.payload,
        signer: c.keys.kek,
        attrs: [contentTypeAttr(), messageDigestAttr(sha256(c.payload)), signingTimeAttr()],
      }),
    }),
  },
  {
    id: "attrs-no-contenttype",
    description: "only a messageDigest attribute (no contentType), signature over the attributes",
    build: (c) => ({
      certData: oneSigner({
        payload: c.payload,
        signer: c.keys.kek,
        attrs: [messageDigestAttr(sha256(c.payload))],
      }),
    }),
  },
  {
    id: "attrs-wrong-contenttype",
    description:
      "contentType attribute says id-signedData while the content is id-data; digest and signature right",
    build: (c) => ({
      certData: oneSigner({
        payload: c.payload,
        signer: c.keys.kek,
        attrs: [contentTypeAttr(OID_SIGNED_DATA), messageDigestAttr(sha256(c.payload))],
      }),
    }),
  },
  {
    id: "attrs-wrong-digest",
    description:
      "messageDigest is SHA-256 of the SHA-256 of the payload (the content hashed twice), signature over the attributes",
    build: (c) => ({
      certData: oneSigner({
        payload: c.payload,
        signer: c.keys.kek,
        attrs: [contentTypeAttr(), messageDigestAttr(sha256(sha256(c.payload)))],
      }),
    }),
  },
  {
    id: "attrs-no-messagedigest",
    description: "only a contentType attribute, signature over the attributes",
    build: (c) => ({
      certData: oneSigner({ payload: c.payload, signer: c.keys.kek, attrs: [contentTypeAttr()] }),
    }),
  },
  {
    id: "attrs-signed-implicit-tag",
    description: "right attributes, but the signature covers their [0] IMPLICIT encoding, not the SET OF",
    build: (c) => ({
      certData: oneSigner({
        payload: c.payload,
        signer: c.keys.kek,
        attrs: [contentTypeAttr(), messageDigestAttr(sha256(c.payload))],
        signOver: "implicit",
      }),
    }),
  },
  {
    id: "attrs-signed-payload",
    description: "right attributes, but the signature covers the payload itself (as if there were none)",
    build: (c) => ({
      certData: oneSigner({
        payload: c.payload,
        signer: c.keys.kek,
        attrs: [contentTypeAttr(), messageDigestAttr(sha256(c.payload))],
        signOver: "payload",
      }),
    }),
  },
  {
    id: "attrs-tampered-data",
    description: "go-uefi layout signed correctly, then the last byte of the variable data flipped",
    build: (c) => {
      const data = Uint8Array.from(c.data);
      data[data.length - 1]! ^= 0x01;
      return {
        certData: oneSigner({
          payload: c.payload,
          signer: c.keys.kek,
          attrs: [contentTypeAttr(), messageDigestAttr(sha256(c.payload))],
        }),
        data,
      };
    },
  },
  {
    id: "attrs-stranger",
    description: "go-uefi layout, correct, but signed by a key that is neither PK nor in KEK",
    build: (c) => ({
      certData: oneSigner({
        payload: c.payload,
        signer: c.keys.stranger,
        attrs: [contentTypeAttr(), messageDigestAttr(sha256(c.payload))],
      }),
    }),
  },
  {
    id: "attrs-digest-two-values",
    description:
      "messageDigest with two values in DER order, the right digest first and 32 bytes of 0xff second",
    build: (c) => ({
      certData: oneSigner({
        payload: c.payload,
        signer: c.keys.kek,
        attrs: [contentTypeAttr(), messageDigestAttr(sha256(c.payload), new Uint8Array(32).fill(0xff))],
      }),
    }),
  },
  {
    id: "attrs-digest-values-unsorted",
    description:
      "messageDigest with two values not in DER order (the right digest, then 32 zero bytes); signature over the attributes as sent",
    build: (c) => ({
      certData: oneSigner({
        payload: c.payload,
        signer: c.keys.kek,
        attrs: [contentTypeAttr(), messageDigestAttr(sha256(c.payload), new Uint8Array(32))],
      }),
    }),
  },
  {
    id: "attrs-digest-duplicate",
    description: "two messageDigest attributes: the first holds a wrong digest, the second the right one",
    build: (c) => ({
      certData: oneSigner({
        payload: c.payload,
        signer: c.keys.kek,
        attrs: [
          contentTypeAttr(),
          messageDigestAttr(new Uint8Array(32).fill(0x11)),
          messageDigestAttr(sha256(c.payload)),
        ],
      }),
    }),
  },
  {
    id: "signer-digest-not-listed",
    description:
      "the signer digests with SHA-384 (messageDigest and signature right for it) while digestAlgorithms lists only SHA-256",
    build: (c) => ({
      certData: oneSigner({
        payload: c.payload,
        signer: c.keys.kek,
        hash: "sha384",
        attrs: [contentTypeAttr(), messageDigestAttr(digest("sha384", c.payload))],
      }),
    }),
  },
  {
    id: "two-signers-kek-and-stranger",
    description: "two correct signers with attributes: the KEK and a key that is neither PK nor in KEK",
    build: (c) => {
      const attrs = [contentTypeAttr(), messageDigestAttr(sha256(c.payload))];
      return {
        certData: handSignedData(
          [
            signerInfo({ payload: c.payload, signer: c.keys.kek, attrs }),
            signerInfo({ payload: c.payload, signer: c.keys.stranger, attrs }),
          ],
          [c.keys.kek.cert, c.keys.stranger.cert],
        ),
      };
    },
  },
  {
    id: "attrs-empty-set",
    description:
      "authenticatedAttributes present but empty ([0] with no attribute), signature over the payload",
    build: (c) => ({
      certData: oneSigner({ payload: c.payload, signer: c.keys.kek, attrs: [], signOver: "payload" }),
    }),
  },
  {
    id: "pk-signer",
    description: "go-uefi layout signed by the PK itself (db may be changed by the PK as well as a KEK)",
    build: (c) => ({
      certData: oneSigner({
        payload: c.payload,
        signer: c.keys.pk,
        attrs: [contentTypeAttr(), messageDigestAttr(sha256(c.payload))],
      }),
    }),
  },
  {
    id: "kek-issued-signer",
    description: "go-uefi layout signed by a leaf the KEK issued; the bag holds the leaf and the KEK",
    build: (c) => ({
      certData: handSignedData(
        [
          signerInfo({
            payload: c.payload,
            signer: c.keys.kekLeaf,
            attrs: [contentTypeAttr(), messageDigestAttr(sha256(c.payload))],
          }),
        ],
        [c.keys.kekLeaf.cert, c.keys.kek.cert],
      ),
    }),
  },
  {
    id: "pk-issued-signer",
    description: "go-uefi layout signed by a leaf the PK issued; the bag holds the leaf and the PK",
    build: (c) => ({
      certData: handSignedData(
        [
          signerInfo({
            payload: c.payload,
            signer: c.keys.pkLeaf,
            attrs: [contentTypeAttr(), messageDigestAttr(sha256(c.payload))],
          }),
        ],
        [c.keys.pkLeaf.cert, c.keys.pk.cert],
      ),
    }),
  },
  {
    id: "signer-subject-key-id",
    description:
      "go-uefi layout, but the SignerInfo (version 3) names the KEK by subjectKeyIdentifier, as CMS allows and PKCS #7 does not",
    build: (c) => ({
      certData: oneSigner({
        payload: c.payload,
        signer: c.keys.kek,
        sid: "subjectKeyIdentifier",
        attrs: [contentTypeAttr(), messageDigestAttr(sha256(c.payload))],
      }),
    }),
  },
  {
    id: "contentinfo-wrapped",
    description: "openssl cms -sign output as is: SignedData inside its ContentInfo",
    build: (c) => ({ certData: opensslCms(c.payload, c.keys.kek, false) }),
  },
];

/** The data each case writes: one EFI_SIGNATURE_LIST with a SHA-256 entry naming the case. */
export function caseData(id: string): Uint8Array {
  return encodeSignatureDatabase([
    sha256List([sha256(new TextEncoder().encode(`bulwark authvar case ${id}`))], BULWARK_OWNER_GUID),
  ]);
}

/** The `.auth` bytes (EFI_VARIABLE_AUTHENTICATION_2 ‖ data) of case `def`. */
export function buildCase(def: CaseDefinition, keys: CaseKeys): Uint8Array {
  const data = caseData(def.id);
  const payload = signedPayload(TARGET, DB_GUID, CASE_ATTRS, CASE_TIME, data);
  const built = def.build({ data, payload, keys });
  const head = encodeAuthentication2({
    timeStamp: CASE_TIME,
    certType: Guids.EFI_CERT_TYPE_PKCS7_GUID,
    certData: built.certData,
  });
  return new Uint8Array(Buffer.concat([head, built.data ?? data]));
}

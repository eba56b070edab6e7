/**
 * Time-based authenticated variable updates: EFI_VARIABLE_AUTHENTICATION_2 (UEFI Specification
 * 2.10, section 8.2.1 "SetVariable()" related definitions, and section 8.2.2 "Using the
 * EFI_VARIABLE_AUTHENTICATION_2 descriptor"), with WIN_CERTIFICATE / WIN_CERTIFICATE_UEFI_GUID
 * from section 32.2.4.
 *
 *   EFI_VARIABLE_AUTHENTICATION_2 { TimeStamp: EFI_TIME, AuthInfo: WIN_CERTIFICATE_UEFI_GUID }
 *   WIN_CERTIFICATE_UEFI_GUID     { Hdr: WIN_CERTIFICATE { dwLength: UINT32, wRevision: UINT16
 *                                   (0x0200), wCertificateType: UINT16 (WIN_CERT_TYPE_EFI_GUID
 *                                   0x0EF1) }, CertType: EFI_GUID (EFI_CERT_TYPE_PKCS7_GUID),
 *                                   CertData[dwLength - 24] }
 *
 * The signature is a detached PKCS #7 SignedData over
 * VariableName (UCS-2, no NUL) ‖ VendorGuid ‖ Attributes (UINT32 LE) ‖ TimeStamp ‖ Data
 * (section 8.2.2 step 1; Attributes as passed to SetVariable(), APPEND_WRITE included). The
 * PKCS #7 itself is src/uefi/pkcs7.ts, which judges it as edk2's Pkcs7Verify does.
 *
 * The verdict is meant to equal edk2's (SecurityPkg AuthVariableLib AuthService.c,
 * VerifyTimeBasedPayload), and test/vectors/uefi/authvar-signedattrs holds cases OVMF itself
 * judged. Beyond the spec's text that means: CertData must be a bare SignedData whose first
 * digestAlgorithms entry is SHA-256 at the fixed byte offset 13 (edk2 compares those bytes; a
 * ContentInfo-wrapped SignedData fails there); authenticatedAttributes, which step 3g says a
 * signer does not have, are accepted and verified as OpenSSL's PKCS7_verify does (messageDigest
 * checked, contentType not); every signer must verify and chain to one PK/KEK certificate.
 *
 * Who may sign (section 32.3 "Firmware/OS Key Exchange", section 8.2.2, as edk2 AuthService.c
 * enforces it): PK and KEK updates by the PK; db, dbx, dbt and dbr updates by a KEK or the PK.
 * "By the PK" is edk2's reading: the first signer's certificate IS the PK's first certificate
 * (no chain to it); "by a KEK" may chain to any X.509 certificate in KEK. In setup mode (no PK)
 * KEK/db/dbx writes need no signature and a PK write must be signed by a key chaining to the
 * first certificate of the new PK.
 *
 * Known difference from edk2: its AuthVariableLibProcessVariable protects only db, dbx and dbt
 * with PK/KEK; dbr is a private authenticated variable there (first signer owns it), while this
 * verifier holds dbr to the PK/KEK rule of the spec, so it refuses dbr updates edk2 would take.
 *
 * NOT checked here: the other authenticated variables (private ones, via certdb), the
 * EFI_VARIABLE_ENHANCED_AUTHENTICATED_ACCESS format, certificate validity periods (firmware has
 * no trusted time), and dbx revocation of the signer.
 */
import type { KeyObject } from "node:crypto";
import { Reader, Writer, encode } from "../core/codec.js";
import { isBulwarkError } from "../core/errors.js";
import { VerdictBuilder, type Severity, type Verdict } from "../core/verdict.js";
import { findSignerCertificate } from "../asn1/cms.js";
import { bytesEqual } from "../core/bytes.js";
import {
  parseUefiSignedData,
  signDetachedForUefiVariable,
  verifyDetached,
  type DetachedVerdict,
} from "./pkcs7.js";
import { EFI_GUID, Guids, type Guid } from "./guid.js";
import { uefiError } from "./errors.js";
import {
  Attr,
  EFI_TIME,
  compareEfiTime,
  efiTimeText,
  variableNameBytesNoNul,
  type EfiTime,
} from "./variables.js";
import {
  decodeSignatureDatabase,
  encodeSignatureDatabase,
  x509Certificates,
  type EfiSignatureList,
} from "./siglist.js";
import { deleteVariable, getVariable, setVariable, type Edk2VarStore } from "./varstore.js";

export const WIN_CERT_REVISION = 0x0200;
export const WIN_CERT_TYPE_EFI_GUID = 0x0ef1;
/** sizeof(EFI_TIME) + sizeof(WIN_CERTIFICATE) + sizeof(EFI_GUID). */
const AUTH2_FIXED = 16 + 8 + 16;
/** Cap on CertData: far above any real PKCS #7 signature with its certificate chain. */
export const MAX_CERT_DATA = 64 * 1024;

export interface EfiVariableAuthentication2 {
  readonly timeStamp: EfiTime;
  readonly certType: Guid;
  /** AuthInfo.CertData: DER PKCS #7 SignedData, as received. */
  readonly certData: Uint8Array;
}

/** A parsed signed update (an `.auth` file): the descriptor and the new variable data. */
export interface SignedUpdate {
  readonly auth: EfiVariableAuthentication2;
  readonly data: Uint8Array;
  /** The received descriptor bytes. */
  readonly raw: Uint8Array;
}

function authInvalid(message: string, offset: number): never {
  throw uefiError("UEFI_ERR_AUTH_INVALID", `${message} at offset ${offset}`, { offset });
}

/** Decodes EFI_VARIABLE_AUTHENTICATION_2 followed by the variable data. Total and bounded. */
export function parseSignedUpdate(bytes: Uint8Array): SignedUpdate {
  try {
    const r = new Reader(bytes);
    const timeStamp = r.at("TimeStamp", () => EFI_TIME.decode(r));
    const dwLength = r.at("AuthInfo.Hdr.dwLength", () => r.u32(true));
    const wRevision = r.at("AuthInfo.Hdr.wRevision", () => r.u16(true));
    const wCertificateType = r.at("AuthInfo.Hdr.wCertificateType", () => r.u16(true));
    if (wRevision !== WIN_CERT_REVISION)
      authInvalid(`wRevision 0x${wRevision.toString(16)} is not 0x0200`, 20);
    if (wCertificateType !== WIN_CERT_TYPE_EFI_GUID) {
      authInvalid(`wCertificateType 0x${wCertificateType.toString(16)} is not WIN_CERT_TYPE_EFI_GUID`, 22);
    }
    if (dwLength < 24 || dwLength - 8 > r.remaining)
      authInvalid(`dwLength ${dwLength} does not fit the input`, 16);
    if (dwLength - 24 > MAX_CERT_DATA)
      authInvalid(`CertData of ${dwLength - 24} bytes exceeds ${MAX_CERT_DATA}`, 16);
    const certType = r.at("AuthInfo.CertType", () => EFI_GUID.decode(r));
    if (certType !== Guids.EFI_CERT_TYPE_PKCS7_GUID)
      authInvalid(`CertType ${certType} is not EFI_CERT_TYPE_PKCS7_GUID`, 24);
    const certData = r.at("AuthInfo.CertData", () => r.take(dwLength - 24));
    const raw = bytes.subarray(0, r.offset);
    const data = r.take(r.remaining);
    return { auth: { timeStamp, certType, certData }, data, raw };
  } catch (e) {
    if (isBulwarkError(e) && e.code.startsWith("CORE_ERR_")) {
      throw uefiError("UEFI_ERR_AUTH_INVALID", e.message, e.details, { cause: e });
    }
    throw e;
  }
}

export function encodeAuthentication2(a: EfiVariableAuthentication2): Uint8Array {
  const w = new Writer(AUTH2_FIXED + a.certData.length);
  EFI_TIME.encode(w, a.timeStamp);
  w.u32(24 + a.certData.length, true);
  w.u16(WIN_CERT_REVISION, true);
  w.u16(WIN_CERT_TYPE_EFI_GUID, true);
  EFI_GUID.encode(w, a.certType);
  w.bytes(a.certData);
  return w.finish();
}

/** The bytes the signature covers (UEFI 2.10 section 8.2.2 step 1). */
export function signedPayload(
  name: string,
  guid: Guid,
  attributes: number,
  timeStamp: EfiTime,
  data: Uint8Array,
): Uint8Array {
  const w = new Writer(64 + data.length);
  w.bytes(variableNameBytesNoNul(name));
  EFI_GUID.encode(w, guid);
  w.u32(attributes >>> 0, true);
  w.bytes(encode(EFI_TIME, timeStamp));
  w.bytes(data);
  return w.finish();
}

export interface CreateSignedUpdateOptions {
  readonly name: string;
  readonly guid: Guid;
  /** Must include EFI_VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS. */
  readonly attributes: number;
  readonly timeStamp: EfiTime;
  /** New variable data (usually an encoded signature database; empty to delete). */
  readonly data: Uint8Array;
  readonly key: KeyObject;
  /** Signer certificate DER. */
  readonly certificate: Uint8Array;
}

/** Creates an `.auth` blob: EFI_VARIABLE_AUTHENTICATION_2 ‖ data. Deterministic for RSA keys. */
export function createSignedUpdate(o: CreateSignedUpdateOptions): Uint8Array {
  if ((o.attributes & Attr.EFI_VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS) === 0) {
    throw uefiError(
      "UEFI_ERR_VARIABLE_INVALID",
      "a signed update needs the TIME_BASED_AUTHENTICATED_WRITE_ACCESS attribute",
    );
  }
  const payload = signedPayload(o.name, o.guid, o.attributes, o.timeStamp, o.data);
  const certData = signDetachedForUefiVariable(payload, o.key, o.certificate);
  const head = encodeAuthentication2({
    timeStamp: o.timeStamp,
    certType: Guids.EFI_CERT_TYPE_PKCS7_GUID,
    certData,
  });
  const out = new Uint8Array(head.length + o.data.length);
  out.set(head);
  out.set(o.data, head.length);
  return out;
}

/**
 * The verdict on a signed update, in the core shape: a failed check is a finding (id
 * `uefi.auth.*`, message = the rule it broke, with its UEFI 2.10 section), a passed one is in
 * `passed`; `uefi.auth.setupMode` is an info finding.
 */
export interface UpdateVerdict extends Verdict {
  /** Which certificate authorised the update, when one did. */
  readonly authorisedBy?: { readonly subject: string; readonly fingerprint256: string };
  readonly update: SignedUpdate;
}

const DB_NAMES = new Set(["db", "dbx", "dbt", "dbr"]);

/** The contents octets of the SHA-256 OID (2.16.840.1.101.3.4.2.1), edk2's mSha256OidValue. */
const SHA256_OID_VALUE = Uint8Array.of(0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01);

/**
 * edk2 VerifyTimeBasedPayload: `(SigData[1] & TWO_BYTE_ENCODE) == TWO_BYTE_ENCODE` and the OID
 * value at SigData + 13 (SEQUENCE 30 82 LL LL, version 02 01 01, SET 31 xx, SEQUENCE 30 xx,
 * OID 06 09): the layout of a bare DER SignedData of 256 bytes to 64 KiB with SHA-256 listed first.
 */
function sha256AtOffset13(certData: Uint8Array): boolean {
  const TWO_BYTE_ENCODE = 0x82;
  return (
    ((certData[1] ?? 0) & TWO_BYTE_ENCODE) === TWO_BYTE_ENCODE &&
    SHA256_OID_VALUE.every((b, i) => certData[13 + i] === b)
  );
}

function certsOf(store: Edk2VarStore, name: string, guid: Guid): Uint8Array[] {
  const v = getVariable(store, name, guid);
  if (!v || v.data.length === 0) return [];
  return x509Certificates(decodeSignatureDatabase(v.data));
}

/**
 * Decides whether `authBytes` (EFI_VARIABLE_AUTHENTICATION_2 ‖ data) may update `name` in `store`,
 * as edk2's AuthVariableLib would. Returns a verdict with every finding; throws only when the
 * descriptor cannot be parsed.
 */
export function verifySignedUpdate(
  store: Edk2VarStore,
  name: string,
  guid: Guid,
  attributes: number,
  authBytes: Uint8Array,
): UpdateVerdict {
  const update = parseSignedUpdate(authBytes);
  const v = new VerdictBuilder();
  const add = (f: { id: string; ok: boolean; severity: Severity; message: string }): void => {
    if (f.ok && f.severity !== "info") v.pass(f.id);
    else v.add({ id: f.id, severity: f.severity, message: f.message });
  };
  const t = update.auth.timeStamp;
  add({
    id: "uefi.auth.attributes",
    ok: (attributes & Attr.EFI_VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS) !== 0,
    severity: "error",
    message: "attributes include TIME_BASED_AUTHENTICATED_WRITE_ACCESS (8.2.2)",
  });
  add({
    id: "uefi.auth.timestampFields",
    ok: t.Pad1 === 0 && t.Nanosecond === 0 && t.TimeZone === 0 && t.Daylight === 0 && t.Pad2 === 0,
    severity: "error",
    message: "TimeStamp Pad1, Nanosecond, TimeZone, Daylight and Pad2 are zero (8.2.1)",
  });
  const current = getVariable(store, name, guid);
  const append = (attributes & Attr.EFI_VARIABLE_APPEND_WRITE) !== 0;
  if (current && !append) {
    add({
      id: "uefi.auth.timestampNewer",
      ok: compareEfiTime(t, current.timestamp) > 0,
      severity: "error",
      message: `TimeStamp ${efiTimeText(t)} is later than the stored ${efiTimeText(current.timestamp)} (8.2.2)`,
    });
  }
  const cd = update.auth.certData;
  add({
    id: "uefi.auth.digestAlgorithmsAtOffset13",
    ok: cd.length < 13 + SHA256_OID_VALUE.length || sha256AtOffset13(cd),
    severity: "error",
    message:
      "CertData is a bare SignedData (two-byte length) whose first digestAlgorithms entry is SHA-256 at byte 13, where edk2's VerifyTimeBasedPayload looks for it (8.2.2 steps 3b, 4); a ContentInfo-wrapped SignedData is refused there",
  });
  const pkCerts = certsOf(store, "PK", Guids.EFI_GLOBAL_VARIABLE);
  const setupMode = pkCerts.length === 0;
  const isPkOrKek = guid === Guids.EFI_GLOBAL_VARIABLE && (name === "PK" || name === "KEK");
  const isDb = guid === Guids.EFI_IMAGE_SECURITY_DATABASE_GUID && DB_NAMES.has(name);
  const payload = signedPayload(name, guid, attributes, t, update.data);
  let authorisedBy: UpdateVerdict["authorisedBy"];
  const record = (d: DetachedVerdict) => {
    if (d.trustedBy)
      authorisedBy = { subject: d.trustedBy.subject, fingerprint256: d.trustedBy.fingerprint256 };
  };
  const why = (d: DetachedVerdict) =>
    d.findings
      .filter((f) => f.severity === "error")
      .map((f) => f.message)
      .join("; ");
  /**
   * edk2 AuthVarTypePk ("no chaining for PK"): the first signer's certificate must be the PK's
   * first certificate byte for byte (Pkcs7GetSigners' TopLevelCert is the certificate of
   * SignerInfos[0]), and Pkcs7Verify then trusts only it. Returns why not, or the verdict.
   */
  const byThePk = (): DetachedVerdict | string => {
    const pk = pkCerts[0];
    if (!pk) return "no PK";
    const sd = parseUefiSignedData(update.auth.certData);
    const first = sd.signerInfos[0];
    const cert = first && findSignerCertificate(sd, first);
    if (!cert) return "the first signer's certificate is not in the SignedData";
    if (!bytesEqual(cert.raw, pk)) {
      return `the first signer's certificate (${cert.subject.text}) is not the PK's certificate itself (edk2 does not chain to the PK)`;
    }
    return verifyDetached(update.auth.certData, payload, { trusted: [pk] });
  };
  const signature = (ok: boolean, message: string) =>
    add({ id: "uefi.auth.signature", ok, severity: "error", message });
  const checkPk = (also?: { readonly trusted: Uint8Array[]; readonly who: string }) => {
    const d = byThePk();
    if (typeof d !== "string" && d.ok) {
      record(d);
      signature(true, `signed by the PK certificate ${d.trustedBy?.subject ?? ""}`);
      return;
    }
    const pkWhy = typeof d === "string" ? d : why(d);
    if (!also) {
      signature(false, `not signed by the PK: ${pkWhy}`);
      return;
    }
    // edk2 ProcessVarWithKek: Pkcs7Verify once per X.509 certificate in KEK, chains allowed.
    const k = verifyDetached(update.auth.certData, payload, { trusted: also.trusted });
    record(k);
    signature(
      k.ok,
      k.ok
        ? `signed by a key chaining to ${also.who} certificate ${k.trustedBy?.subject ?? ""}`
        : `not signed by the PK (${pkWhy}), nor by a key chaining to ${also.who} (${why(k)})`,
    );
  };
  if (!isPkOrKek && !isDb) {
    add({
      id: "uefi.auth.scope",
      ok: false,
      severity: "error",
      message: `${name} (${guid}) is not PK, KEK, db, dbx, dbt or dbr; private authenticated variables are not supported`,
    });
  } else if (setupMode && name === "PK") {
    let newPk: Uint8Array[] = [];
    try {
      newPk = x509Certificates(decodeSignatureDatabase(update.data));
    } catch (e) {
      if (!isBulwarkError(e)) throw e;
    }
    // edk2 AuthVarTypePayload: the first certificate of the new PK is the one trusted certificate.
    const d = verifyDetached(update.auth.certData, payload, { trusted: newPk.slice(0, 1) });
    record(d);
    signature(
      d.ok,
      d.ok
        ? `signed by a key chaining to the new PK certificate ${d.trustedBy?.subject ?? ""} (setup mode: PK is self-signed)`
        : `no valid signature chaining to the new PK (setup mode: PK must be self-signed): ${why(d)}`,
    );
  } else if (setupMode) {
    add({
      id: "uefi.auth.setupMode",
      ok: true,
      severity: "info",
      message: "setup mode (no PK): the update needs no trusted signer",
    });
  } else if (isPkOrKek) {
    checkPk();
  } else {
    checkPk({ trusted: certsOf(store, "KEK", Guids.EFI_GLOBAL_VARIABLE), who: "a KEK" });
  }
  if (update.data.length > 0 && (isPkOrKek || isDb)) {
    let ok = true;
    try {
      decodeSignatureDatabase(update.data);
    } catch (e) {
      if (!isBulwarkError(e)) throw e;
      ok = false;
    }
    add({
      id: "uefi.auth.dataIsSignatureDatabase",
      ok,
      severity: "error",
      message: "the new data is a well-formed list of EFI_SIGNATURE_LISTs",
    });
  }
  return { ...v.verdict(), update, ...(authorisedBy ? { authorisedBy } : {}) };
}

/** Appends lists to a database, skipping entries already present (edk2 AppendSignatureList filtering). */
function appendLists(
  existing: readonly EfiSignatureList[],
  extra: readonly EfiSignatureList[],
): EfiSignatureList[] {
  const seen = new Set(
    existing.flatMap((l) => l.entries.map((e) => `${l.type}:${Buffer.from(e.data).toString("hex")}`)),
  );
  const out = [...existing];
  for (const l of extra) {
    const entries = l.entries.filter((e) => !seen.has(`${l.type}:${Buffer.from(e.data).toString("hex")}`));
    if (entries.length) out.push({ ...l, entries });
  }
  return out;
}

/**
 * Applies a verified signed update to the store (SetVariable() semantics for PK/KEK/db/dbx):
 * replace, append (APPEND_WRITE) or delete (empty data). Refused updates throw UEFI_ERR_AUTH_REFUSED
 * with the failed findings in the details.
 */
export function applySignedUpdate(
  store: Edk2VarStore,
  name: string,
  guid: Guid,
  attributes: number,
  authBytes: Uint8Array,
): Edk2VarStore {
  const verdict = verifySignedUpdate(store, name, guid, attributes, authBytes);
  if (!verdict.ok) {
    const failed = verdict.findings.filter((f) => f.severity === "error");
    throw uefiError(
      "UEFI_ERR_AUTH_REFUSED",
      `update of ${name} refused: ${failed.map((f) => f.message).join("; ")}`,
      {
        findings: failed.map((f) => f.id),
      },
    );
  }
  const { data, auth } = verdict.update;
  const current = getVariable(store, name, guid);
  const append = (attributes & Attr.EFI_VARIABLE_APPEND_WRITE) !== 0;
  const storedAttrs = attributes & ~Attr.EFI_VARIABLE_APPEND_WRITE;
  if (data.length === 0 && !append) {
    return current ? deleteVariable(store, name, guid) : store;
  }
  let newData = data;
  let timestamp = auth.timeStamp;
  if (append && current) {
    newData = encodeSignatureDatabase(
      appendLists(decodeSignatureDatabase(current.data), decodeSignatureDatabase(data)),
    );
    if (compareEfiTime(current.timestamp, timestamp) > 0) timestamp = current.timestamp;
  }
  return setVariable(store, { name, guid, attributes: storedAttrs, data: newData, timestamp });
}

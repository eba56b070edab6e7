/**
 * {@link Tpm}: a TPM 2.0 client over any {@link Transport}. Each method marshals one command
 * declared in commands.ts through the generic executor, so every method here is thin. Commands
 * that authorize a handle take a {@link Session} (a password session with an empty password
 * when omitted). Objects come back as {@link KeyRef}s carrying handle, Name and public area,
 * which is what HMAC sessions and MakeCredential need.
 *
 * Library code: no printing, no process access; the transport is the only adapter.
 */
import { randomBytes } from "node:crypto";
import { decode } from "../core/codec.js";
import { hashInfo, TPM_ALG } from "./alg.js";
import { execute, type CommandResult, type CommandSpec, type HandleRef } from "./command.js";
import * as C from "./commands.js";
import { TPM_CAP, TPM_HT, TPM_PT, TPM_RH, TPM_SE, TPM_SU } from "./constants.js";
import { tpmError } from "./errors.js";
import { kdfa } from "./kdf.js";
import { concat } from "./names.js";
import { shareSecret } from "./secret.js";
import { pcrSelection, selectedIndices, type PcrValues } from "./pcr.js";
import { HmacSession, PasswordSession, PolicySession, type RandomSource, type Session } from "./sessions.js";
import {
  TPMS_ATTEST,
  type PublicArea,
  type TpmsAttest,
  type TpmsNvPublic,
  type TpmsPcrSelection,
  type TpmtPublic,
  type TpmtScheme,
  type TpmtSignature,
  type TpmtHa,
} from "./structures.js";
import type { Transport } from "./transport/transport.js";

/** A loaded or persistent object: what commands need to name and authorize it. */
export interface KeyRef extends HandleRef {
  readonly name: Uint8Array;
  readonly public: PublicArea;
}

export interface CreatedObject {
  /** TPM2B_PRIVATE contents (encrypted by the parent). */
  readonly private: Uint8Array;
  readonly public: PublicArea;
}

export interface QuoteResult {
  /** TPMS_ATTEST bytes exactly as signed (tpm2_quote's `-m` file). */
  readonly quoted: Uint8Array;
  readonly attest: TpmsAttest;
  readonly signature: TpmtSignature;
}

export interface NvPublicInfo {
  readonly public: TpmsNvPublic;
  readonly raw: Uint8Array;
  readonly name: Uint8Array;
}

export interface StartSessionOptions {
  /** A loaded key (with its public area) to salt the session with. */
  readonly salt?: KeyRef;
  /** The TPM encrypts the first response parameter (TPMA_SESSION.encrypt). */
  readonly encrypt?: boolean;
  /** We encrypt the first command parameter (TPMA_SESSION.decrypt). */
  readonly decrypt?: boolean;
}

export interface TpmOptions {
  /** Source of nonceCaller values; injectable so transcripts replay deterministically. */
  readonly random?: RandomSource;
}

const pw = (): Session => new PasswordSession();
const hierarchy = (handle: number, auth?: Uint8Array): HandleRef => (auth ? { handle, auth } : { handle });

export class Tpm {
  readonly random: RandomSource;

  constructor(
    readonly transport: Transport,
    opts: TpmOptions = {},
  ) {
    this.random = opts.random ?? ((n) => new Uint8Array(randomBytes(n)));
  }

  /** Runs any declared command (see commands.ts) with explicit handles and sessions. */
  execute<P, R>(
    spec: CommandSpec<P, R>,
    handles: readonly HandleRef[],
    sessions: readonly Session[],
    params: P,
  ): Promise<CommandResult<R>> {
    if (sessions.length > spec.handles) {
      throw tpmError(
        "TPM_ERR_INVALID_ARGUMENT",
        `TPM2_${spec.name} authorizes at most ${spec.handles} handles`,
      );
    }
    return execute(this.transport, spec, handles, sessions, params);
  }

  close(): Promise<void> {
    return this.transport.close();
  }

  /** TPM2_Startup(CLEAR or STATE). */
  async startup(type: number = TPM_SU.CLEAR): Promise<void> {
    await this.execute(C.Startup, [], [], { startupType: type });
  }
  /** TPM2_Shutdown(CLEAR or STATE). */
  async shutdown(type: number = TPM_SU.CLEAR): Promise<void> {
    await this.execute(C.Shutdown, [], [], { shutdownType: type });
  }
  /** TPM2_SelfTest. */
  async selfTest(fullTest = true): Promise<void> {
    await this.execute(C.SelfTest, [], [], { fullTest: fullTest ? 1 : 0 });
  }

  /** TPM2_GetCapability, one call. */
  async getCapability(capability: number, property: number, propertyCount: number) {
    return (await this.execute(C.GetCapability, [], [], { capability, property, propertyCount })).params;
  }

  /** All TPM properties from `first` on (fixed ones by default), following moreData. */
  async properties(first: number = TPM_PT.FAMILY_INDICATOR, last = 0x2ff): Promise<Map<number, number>> {
    const out = new Map<number, number>();
    let next = first;
    for (let guard = 0; guard < 64 && next <= last; guard++) {
      const r = await this.getCapability(TPM_CAP.TPM_PROPERTIES, next, 64);
      const props = r.capabilityData.data as { property: number; value: number }[];
      for (const p of props) if (p.property <= last) out.set(p.property, p.value);
      const lastSeen = props[props.length - 1]?.property;
      if (!r.moreData || lastSeen === undefined) break;
      next = lastSeen + 1;
    }
    return out;
  }

  /** The allocated PCR banks (TPM_CAP_PCRS). */
  async pcrBanks(): Promise<TpmsPcrSelection[]> {
    const r = await this.getCapability(TPM_CAP.PCRS, 0, 1);
    return r.capabilityData.data as TpmsPcrSelection[];
  }

  /** Handles of one type (TPM_HT_* in the top byte), following moreData. */
  async handles(type: number = TPM_HT.PERSISTENT): Promise<number[]> {
    const out: number[] = [];
    let next = (type << 24) >>> 0;
    const end = ((type + 1) << 24) >>> 0;
    for (let guard = 0; guard < 256; guard++) {
      const r = await this.getCapability(TPM_CAP.HANDLES, next, 254);
      const hs = (r.capabilityData.data as number[]).filter((h) => h >>> 24 === type);
      out.push(...hs);
      const lastSeen = hs[hs.length - 1];
      if (!r.moreData || lastSeen === undefined || lastSeen + 1 >= end) break;
      next = lastSeen + 1;
    }
    return out;
  }

  /** TPM2_GetRandom, repeated until `n` bytes. */
  async getRandom(n: number): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let got = 0;
    while (got < n) {
      const r = await this.execute(C.GetRandom, [], [], { bytesRequested: Math.min(n - got, 32) });
      if (r.params.randomBytes.length === 0)
        throw tpmError("TPM_ERR_MALFORMED_RESPONSE", "TPM2_GetRandom returned no bytes");
      parts.push(r.params.randomBytes);
      got += r.params.randomBytes.length;
    }
    return concat(...parts).subarray(0, n);
  }

  /**
   * TPM2_PCR_Read of every selected PCR, repeating the command because one call returns at
   * most 8 digests. Returns values by bank and index, and the last pcrUpdateCounter.
   */
  async pcrRead(
    selection: readonly TpmsPcrSelection[],
  ): Promise<{ values: PcrValues; updateCounter: number }> {
    const values = new Map<number, Map<number, Uint8Array>>();
    let updateCounter = 0;
    for (const sel of selection) {
      let pending = selectedIndices(sel);
      const bank = new Map<number, Uint8Array>();
      values.set(sel.hash, bank);
      for (let guard = 0; pending.length && guard < 64; guard++) {
        const r = await this.execute(C.PCR_Read, [], [], {
          pcrSelectionIn: [pcrSelection(sel.hash, pending, sel.pcrSelect.length)],
        });
        updateCounter = r.params.pcrUpdateCounter;
        const out = r.params.pcrSelectionOut.find((s) => s.hash === sel.hash);
        const got = out ? selectedIndices(out) : [];
        if (got.length === 0) break; // the bank or PCRs are not allocated
        got.forEach((idx, i) => {
          const v = r.params.pcrValues[i];
          if (v) bank.set(idx, v);
        });
        pending = pending.filter((i) => !got.includes(i));
      }
    }
    return { values, updateCounter };
  }

  /** TPM2_PCR_Extend of one PCR with one digest per bank. */
  async pcrExtend(pcr: number, digests: readonly TpmtHa[], session: Session = pw()): Promise<void> {
    if (!Number.isInteger(pcr) || pcr < 0 || pcr > 31)
      throw tpmError("TPM_ERR_INVALID_ARGUMENT", `PCR ${pcr} out of range`);
    await this.execute(C.PCR_Extend, [{ handle: pcr }], [session], { digests: [...digests] });
  }

  /** TPM2_CreatePrimary under a hierarchy (TPM_RH_OWNER, _ENDORSEMENT, _PLATFORM, _NULL). */
  async createPrimary(
    hierarchyHandle: number,
    template: TpmtPublic,
    opts: { session?: Session; hierarchyAuth?: Uint8Array; userAuth?: Uint8Array; data?: Uint8Array } = {},
  ): Promise<KeyRef> {
    const r = await this.execute(
      C.CreatePrimary,
      [hierarchy(hierarchyHandle, opts.hierarchyAuth)],
      [opts.session ?? pw()],
      {
        inSensitive: { userAuth: opts.userAuth ?? new Uint8Array(0), data: opts.data ?? new Uint8Array(0) },
        inPublic: template,
        outsideInfo: new Uint8Array(0),
        creationPCR: [],
      },
    );
    if (r.handle === undefined)
      throw tpmError("TPM_ERR_MALFORMED_RESPONSE", "TPM2_CreatePrimary returned no handle");
    return {
      handle: r.handle,
      name: r.params.name,
      public: r.params.outPublic,
      ...(opts.userAuth ? { auth: opts.userAuth } : {}),
    };
  }

  /** TPM2_Create of an object under `parent`; `data` seals bytes into a KEYEDHASH object. */
  async create(
    parent: HandleRef,
    template: TpmtPublic,
    opts: { session?: Session; userAuth?: Uint8Array; data?: Uint8Array } = {},
  ): Promise<CreatedObject> {
    const r = await this.execute(C.Create, [parent], [opts.session ?? pw()], {
      inSensitive: { userAuth: opts.userAuth ?? new Uint8Array(0), data: opts.data ?? new Uint8Array(0) },
      inPublic: template,
      outsideInfo: new Uint8Array(0),
      creationPCR: [],
    });
    return { private: r.params.outPrivate, public: r.params.outPublic };
  }

  /** TPM2_Load of a created object under `parent`. */
  async load(
    parent: HandleRef,
    obj: CreatedObject,
    opts: { session?: Session; userAuth?: Uint8Array } = {},
  ): Promise<KeyRef> {
    const r = await this.execute(C.Load, [parent], [opts.session ?? pw()], {
      inPrivate: obj.private,
      inPublic: obj.public,
    });
    if (r.handle === undefined) throw tpmError("TPM_ERR_MALFORMED_RESPONSE", "TPM2_Load returned no handle");
    return {
      handle: r.handle,
      name: r.params.name,
      public: obj.public,
      ...(opts.userAuth ? { auth: opts.userAuth } : {}),
    };
  }

  /** TPM2_ReadPublic; also turns a persistent handle into a {@link KeyRef}. */
  async readPublic(handle: number): Promise<KeyRef & { qualifiedName: Uint8Array }> {
    const r = await this.execute(C.ReadPublic, [{ handle }], [], {});
    return { handle, name: r.params.name, public: r.params.outPublic, qualifiedName: r.params.qualifiedName };
  }

  /**
   * TPM2_Quote with `ak` over `selection`, qualifyingData = `nonce`. The scheme defaults to the
   * key's own (TPM_ALG_NULL), which restricted signing keys require.
   */
  async quote(
    ak: HandleRef,
    nonce: Uint8Array,
    selection: readonly TpmsPcrSelection[],
    opts: { session?: Session; scheme?: TpmtScheme } = {},
  ): Promise<QuoteResult> {
    const r = await this.execute(C.Quote, [ak], [opts.session ?? pw()], {
      qualifyingData: nonce,
      inScheme: opts.scheme ?? { scheme: TPM_ALG.NULL, hashAlg: null, extra: null },
      PCRselect: [...selection],
    });
    return {
      quoted: r.params.quoted,
      attest: decode(TPMS_ATTEST, r.params.quoted),
      signature: r.params.signature,
    };
  }

  /**
   * TPM2_ActivateCredential: `ak` is the credentialed object, `ek` the key the secret was
   * encrypted to. An EK made from the TCG templates needs a policy session satisfying
   * PolicySecret(TPM_RH_ENDORSEMENT); {@link ekPolicySession} makes one. A blob whose
   * integrityHMAC does not verify (altered, or made for another object name or EK) is
   * TPM_ERR_INTEGRITY (the TPM answers TPM_RC_INTEGRITY, Part 3, section 12.5.1).
   */
  async activateCredential(
    ak: HandleRef,
    ek: HandleRef,
    credentialBlob: Uint8Array,
    secret: Uint8Array,
    sessions: { ak?: Session; ek: Session },
  ): Promise<Uint8Array> {
    const r = await this.execute(C.ActivateCredential, [ak, ek], [sessions.ak ?? pw(), sessions.ek], {
      credentialBlob,
      secret,
    });
    return r.params.certInfo;
  }

  /** TPM2_MakeCredential on the TPM (for cross-checking the software implementation). */
  async makeCredential(
    key: HandleRef,
    credential: Uint8Array,
    objectName: Uint8Array,
  ): Promise<{ credentialBlob: Uint8Array; secret: Uint8Array }> {
    const r = await this.execute(C.MakeCredential, [key], [], { credential, objectName });
    return r.params;
  }

  /**
   * TPM2_StartAuthSession: an unbound HMAC or policy session (TPM_SE_TRIAL for trial).
   * With `salt`, the session key derives from a random salt encrypted to that loaded key (an EK
   * or SRK; Part 1, section 19.6.13), so the HMAC key and encrypted parameters are secret even
   * when authValues are known. With `encrypt` / `decrypt` (AES-128-CFB) the first response /
   * command parameter travels encrypted.
   */
  async startAuthSession(type: "hmac", hashAlg?: number, opts?: StartSessionOptions): Promise<HmacSession>;
  async startAuthSession(
    type: "policy" | "trial",
    hashAlg?: number,
    opts?: StartSessionOptions,
  ): Promise<PolicySession>;
  async startAuthSession(
    type: "hmac" | "policy" | "trial",
    hashAlg: number = TPM_ALG.SHA256,
    opts: StartSessionOptions = {},
  ): Promise<HmacSession | PolicySession> {
    const size = hashInfo(hashAlg).size;
    const nonceCaller = this.random(size);
    const sessionType = type === "hmac" ? TPM_SE.HMAC : type === "policy" ? TPM_SE.POLICY : TPM_SE.TRIAL;
    const salt = opts.salt ? shareSecret(opts.salt.public.value, "SECRET", this.random) : undefined;
    const aes = opts.encrypt || opts.decrypt;
    const r = await this.execute(
      C.StartAuthSession,
      [
        opts.salt ? { handle: opts.salt.handle, name: opts.salt.name } : { handle: TPM_RH.NULL },
        { handle: TPM_RH.NULL },
      ],
      [],
      {
        nonceCaller,
        encryptedSalt: salt?.encrypted ?? new Uint8Array(0),
        sessionType,
        symmetric: aes
          ? { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB }
          : { algorithm: TPM_ALG.NULL, keyBits: null, mode: null },
        authHash: hashAlg,
      },
    );
    if (r.handle === undefined)
      throw tpmError("TPM_ERR_MALFORMED_RESPONSE", "TPM2_StartAuthSession returned no handle");
    // Part 1, section 19.6.8: sessionKey = KDFa(authHash, bind.authValue || salt, "ATH", nonceTPM, nonceCaller, bits).
    const sessionKey = salt
      ? kdfa(hashAlg, salt.seed, "ATH", r.params.nonceTPM, nonceCaller, size * 8)
      : new Uint8Array(0);
    const sopts = {
      sessionKey,
      ...(aes ? { aesKeyBits: 128 } : {}),
      ...(opts.encrypt ? { encrypt: true } : {}),
      ...(opts.decrypt ? { decrypt: true } : {}),
    };
    return type === "hmac"
      ? new HmacSession(r.handle, hashAlg, r.params.nonceTPM, this.random, sopts)
      : new PolicySession(r.handle, hashAlg, r.params.nonceTPM, this.random, sopts);
  }

  /** TPM2_PolicyPCR; an empty pcrDigest makes the TPM use the current PCR values. */
  async policyPcr(
    session: PolicySession,
    selection: readonly TpmsPcrSelection[],
    pcrDigest: Uint8Array = new Uint8Array(0),
  ): Promise<void> {
    await this.execute(C.PolicyPCR, [{ handle: session.handle }], [], { pcrDigest, pcrs: [...selection] });
  }

  /** TPM2_PolicySecret: proves knowledge of `auth`'s authValue to the policy session. */
  async policySecret(
    auth: HandleRef,
    session: PolicySession,
    opts: { authSession?: Session; policyRef?: Uint8Array; expiration?: number; bindNonce?: boolean } = {},
  ): Promise<void> {
    await this.execute(C.PolicySecret, [auth, { handle: session.handle }], [opts.authSession ?? pw()], {
      nonceTPM: opts.bindNonce === false ? new Uint8Array(0) : session.tpmNonce,
      cpHashA: new Uint8Array(0),
      policyRef: opts.policyRef ?? new Uint8Array(0),
      expiration: (opts.expiration ?? 0) >>> 0,
    });
  }

  /** TPM2_PolicyCommandCode. */
  async policyCommandCode(session: PolicySession, code: number): Promise<void> {
    await this.execute(C.PolicyCommandCode, [{ handle: session.handle }], [], { code });
  }

  /** TPM2_PolicyAuthValue; the session then HMACs with the object's authValue. */
  async policyAuthValue(session: PolicySession): Promise<void> {
    await this.execute(C.PolicyAuthValue, [{ handle: session.handle }], [], {});
    session.requireAuthValue();
  }

  /** TPM2_PolicyGetDigest. */
  async policyGetDigest(session: PolicySession): Promise<Uint8Array> {
    return (await this.execute(C.PolicyGetDigest, [{ handle: session.handle }], [], {})).params.policyDigest;
  }

  /** A policy session satisfying the TCG EK policy (PolicySecret with the endorsement hierarchy). */
  async ekPolicySession(endorsementAuth?: Uint8Array): Promise<PolicySession> {
    const s = await this.startAuthSession("policy", TPM_ALG.SHA256);
    try {
      await this.policySecret(hierarchy(TPM_RH.ENDORSEMENT, endorsementAuth), s, {
        authSession: new PasswordSession(endorsementAuth),
      });
    } catch (e) {
      await this.flushContext(s.handle).catch(() => undefined);
      throw e;
    }
    return s;
  }

  /** TPM2_Unseal. */
  async unseal(item: HandleRef, session: Session = pw()): Promise<Uint8Array> {
    return (await this.execute(C.Unseal, [item], [session], {})).params.outData;
  }

  /** TPM2_NV_ReadPublic. */
  async nvReadPublic(index: number): Promise<NvPublicInfo> {
    const r = await this.execute(C.NV_ReadPublic, [{ handle: index }], [], {});
    return { public: r.params.nvPublic.value, raw: r.params.nvPublic.raw, name: r.params.nvName };
  }

  /**
   * TPM2_NV_Read of a whole index (or `size` bytes from `offset`), in chunks the TPM accepts.
   * `authHandle` defaults to the index itself (TPMA_NV_AUTHREAD) with an empty password;
   * EK certificate indices are also readable with TPM_RH_OWNER.
   */
  async nvRead(
    index: number,
    opts: { authHandle?: HandleRef; session?: Session; offset?: number; size?: number; chunk?: number } = {},
  ): Promise<Uint8Array> {
    const info = await this.nvReadPublic(index);
    const nvRef: HandleRef = { handle: index, name: info.name };
    const authRef = opts.authHandle ?? nvRef;
    const offset = opts.offset ?? 0;
    const size = opts.size ?? info.public.dataSize - offset;
    if (offset < 0 || size < 0 || offset + size > info.public.dataSize) {
      throw tpmError(
        "TPM_ERR_INVALID_ARGUMENT",
        `NV range ${offset}+${size} outside index of ${info.public.dataSize} bytes`,
      );
    }
    const chunk = opts.chunk ?? (await this.nvBufferMax());
    const parts: Uint8Array[] = [];
    for (let at = offset; at < offset + size;) {
      const n = Math.min(chunk, offset + size - at);
      const r = await this.execute(C.NV_Read, [authRef, nvRef], [opts.session ?? pw()], {
        size: n,
        offset: at,
      });
      if (r.params.data.length !== n)
        throw tpmError(
          "TPM_ERR_MALFORMED_RESPONSE",
          `TPM2_NV_Read returned ${r.params.data.length} of ${n} bytes`,
        );
      parts.push(r.params.data);
      at += n;
    }
    return concat(...parts);
  }

  private nvMax: number | undefined;
  /** TPM_PT_NV_BUFFER_MAX, cached; 512 when the TPM does not report it. */
  async nvBufferMax(): Promise<number> {
    if (this.nvMax === undefined) {
      const p = await this.properties(TPM_PT.NV_BUFFER_MAX, TPM_PT.NV_BUFFER_MAX);
      this.nvMax = Math.min(p.get(TPM_PT.NV_BUFFER_MAX) ?? 512, 1024);
    }
    return this.nvMax;
  }

  /** TPM2_NV_DefineSpace under TPM_RH_OWNER or TPM_RH_PLATFORM. */
  async nvDefineSpace(
    authHandle: HandleRef,
    publicInfo: TpmsNvPublic,
    auth: Uint8Array = new Uint8Array(0),
    session: Session = pw(),
  ): Promise<void> {
    await this.execute(C.NV_DefineSpace, [authHandle], [session], { auth, publicInfo });
  }

  /** TPM2_NV_UndefineSpace. */
  async nvUndefineSpace(authHandle: HandleRef, index: number, session: Session = pw()): Promise<void> {
    const info = await this.nvReadPublic(index);
    await this.execute(C.NV_UndefineSpace, [authHandle, { handle: index, name: info.name }], [session], {});
  }

  /** TPM2_NV_Write of `data` at `offset`, in chunks; authHandle defaults to the index. */
  async nvWrite(
    index: number,
    data: Uint8Array,
    opts: { authHandle?: HandleRef; session?: Session; offset?: number } = {},
  ): Promise<void> {
    const chunk = await this.nvBufferMax();
    const base = opts.offset ?? 0;
    let at = 0;
    do {
      // The Name changes once TPMA_NV_WRITTEN is set, so it is read again for each chunk.
      const info = await this.nvReadPublic(index);
      const nvRef: HandleRef = { handle: index, name: info.name };
      await this.execute(C.NV_Write, [opts.authHandle ?? nvRef, nvRef], [opts.session ?? pw()], {
        data: data.subarray(at, at + chunk),
        offset: base + at,
      });
      at += chunk;
    } while (at < data.length);
  }

  /** TPM2_FlushContext of a transient object or session. */
  async flushContext(handle: number): Promise<void> {
    await this.execute(C.FlushContext, [], [], { flushHandle: handle });
  }

  /**
   * TPM2_EvictControl: makes `object` persistent at `persistentHandle`, or, when `object` is
   * itself persistent, evicts it.
   */
  async evictControl(
    authHandle: HandleRef,
    object: HandleRef,
    persistentHandle: number,
    session: Session = pw(),
  ): Promise<void> {
    await this.execute(C.EvictControl, [authHandle, object], [session], { persistentHandle });
  }
}

/** A {@link HandleRef} for TPM_RH_OWNER / _ENDORSEMENT / _PLATFORM with an optional authValue. */
export function hierarchyRef(handle: number, auth?: Uint8Array): HandleRef {
  return hierarchy(handle, auth);
}

/**
 * Authorization sessions (TCG TPM 2.0 Library Part 1, section 19; the command and response
 * authorization areas of Part 1, section 18.7-18.8 and Part 2, Tables 152-153).
 *
 * - {@link PasswordSession}: TPM_RS_PW with the authValue in clear (Part 1, 19.6.3).
 * - {@link HmacSession}: an unbound, unsalted HMAC session; the HMAC covers cpHash / rpHash
 *   and both nonces (Part 1, 19.6.5 and 19.6.8), so a response altered in transit is refused.
 * - {@link PolicySession}: a policy session (Part 1, 19.7); it carries no HMAC unless
 *   TPM2_PolicyAuthValue or TPM2_PolicyPassword was asserted.
 * Sessions hold no secrets beyond what the caller passed and never print them.
 */
import { encode, struct, u8 } from "../core/codec.js";
import { createCipheriv, createDecipheriv } from "node:crypto";
import { hashInfo, hmac } from "./alg.js";
import { kdfa } from "./kdf.js";
import { TPM_RH, TPMA_SESSION } from "./constants.js";
import { tpmError } from "./errors.js";
import { concat } from "./names.js";
import { secretsEqual } from "../core/bytes.js";
import { TPM2B_AUTH, TPM2B_NONCE, TPM_HANDLE } from "./structures.js";

/** TPMS_AUTH_COMMAND (Part 2, section 10.13.2, Table 136). */
export const TPMS_AUTH_COMMAND = struct("TPMS_AUTH_COMMAND", {
  sessionHandle: TPM_HANDLE,
  nonce: TPM2B_NONCE,
  sessionAttributes: u8,
  hmac: TPM2B_AUTH,
});
/** TPMS_AUTH_RESPONSE (Part 2, section 10.13.3, Table 137). */
export const TPMS_AUTH_RESPONSE = struct("TPMS_AUTH_RESPONSE", {
  nonce: TPM2B_NONCE,
  sessionAttributes: u8,
  hmac: TPM2B_AUTH,
});
export type AuthResponse = ReturnType<typeof TPMS_AUTH_RESPONSE.decode>;

/** What a session needs to authorize one handle of one command. */
export interface AuthContext {
  /** H_sessionAlg(commandCode || names || parameters), computed lazily by the executor. */
  cpHash(alg: number): Uint8Array;
  rpHash(alg: number): Uint8Array;
  /** authValue of the entity this session authorizes (empty when none). */
  readonly entityAuth: Uint8Array;
}

export interface Session {
  readonly handle: number;
  /** Parameter encryption (TPMA_SESSION.decrypt / .encrypt), for sessions that support it. */
  readonly decryptsCommand?: boolean;
  readonly encryptsResponse?: boolean;
  prepare?(): void;
  encryptParameter?(data: Uint8Array, entityAuth: Uint8Array): Uint8Array;
  decryptParameter?(data: Uint8Array, entityAuth: Uint8Array): Uint8Array;
  /** Marshaled TPMS_AUTH_COMMAND for this command. */
  command(ctx: AuthContext): Uint8Array;
  /** Checks the TPMS_AUTH_RESPONSE and updates the session's nonces. */
  response(ctx: AuthContext, rsp: AuthResponse): void;
}

export type RandomSource = (n: number) => Uint8Array;

/** Trailing zero octets of an authValue are not part of the HMAC key (Part 1, section 19.6.4.3). */
export function trimAuth(auth: Uint8Array): Uint8Array {
  let n = auth.length;
  while (n > 0 && auth[n - 1] === 0) n--;
  return auth.subarray(0, n);
}

/** TPM_RS_PW: the authValue travels in clear in the hmac field (Part 1, section 19.6.3). */
export class PasswordSession implements Session {
  readonly handle = TPM_RH.PW;
  constructor(private readonly password: Uint8Array = new Uint8Array(0)) {}

  command(): Uint8Array {
    return encode(TPMS_AUTH_COMMAND, {
      sessionHandle: TPM_RH.PW,
      nonce: new Uint8Array(0),
      sessionAttributes: TPMA_SESSION.continueSession,
      hmac: this.password,
    });
  }
  response(_ctx: AuthContext, rsp: AuthResponse): void {
    if (rsp.nonce.length !== 0 || rsp.hmac.length !== 0) {
      throw tpmError("TPM_ERR_MALFORMED_RESPONSE", "password session response carries a nonce or HMAC");
    }
  }
  toString(): string {
    return "PasswordSession(****)";
  }
}

/** Options of a session started with TPM2_StartAuthSession. */
export interface SessionOptions {
  readonly continueSession?: boolean;
  /**
   * sessionKey = KDFa(hash, salt, "ATH", nonceTPM, nonceCaller, digest bits) for a salted
   * session (Part 1, section 19.6.8); empty for an unsalted, unbound one.
   */
  readonly sessionKey?: Uint8Array;
  /** AES key bits when the session was started with symmetric = AES-CFB (parameter encryption). */
  readonly aesKeyBits?: number;
  /** TPMA_SESSION.decrypt: encrypt the first command parameter (a TPM2B) on the wire. */
  readonly decrypt?: boolean;
  /** TPMA_SESSION.encrypt: the TPM encrypts the first response parameter (a TPM2B). */
  readonly encrypt?: boolean;
}

/** A session started with TPM2_StartAuthSession: handle, hash, session key and the rolling nonces. */
abstract class NonceSession implements Session {
  protected nonceTpm: Uint8Array;
  protected lastCaller: Uint8Array = new Uint8Array(0);
  private pendingCaller: Uint8Array | undefined;
  protected readonly attrs: number;
  protected readonly sessionKey: Uint8Array;
  private readonly aesKeyBits: number;

  constructor(
    readonly handle: number,
    readonly hashAlg: number,
    nonceTpm: Uint8Array,
    protected readonly random: RandomSource,
    opts: SessionOptions = {},
  ) {
    this.nonceTpm = nonceTpm;
    this.sessionKey = opts.sessionKey ?? new Uint8Array(0);
    this.aesKeyBits = opts.aesKeyBits ?? 0;
    if ((opts.decrypt || opts.encrypt) && !this.aesKeyBits) {
      throw tpmError("TPM_ERR_INVALID_ARGUMENT", "parameter encryption needs a session started with AES-CFB");
    }
    this.attrs =
      (opts.continueSession === false ? 0 : TPMA_SESSION.continueSession) |
      (opts.decrypt ? TPMA_SESSION.decrypt : 0) |
      (opts.encrypt ? TPMA_SESSION.encrypt : 0);
  }

  /** The TPM's latest nonce (needed by TPM2_PolicySecret / PolicySigned). */
  get tpmNonce(): Uint8Array {
    return this.nonceTpm;
  }
  get decryptsCommand(): boolean {
    return (this.attrs & TPMA_SESSION.decrypt) !== 0;
  }
  get encryptsResponse(): boolean {
    return (this.attrs & TPMA_SESSION.encrypt) !== 0;
  }

  protected abstract commandHmac(ctx: AuthContext, nonceCaller: Uint8Array): Uint8Array;
  protected abstract checkResponseHmac(ctx: AuthContext, rsp: AuthResponse): void;

  /** Picks nonceCaller for the next command (parameter encryption needs it before the HMAC). */
  prepare(): void {
    this.pendingCaller = this.random(hashInfo(this.hashAlg).size);
  }

  command(ctx: AuthContext): Uint8Array {
    const nonceCaller = this.pendingCaller ?? this.random(hashInfo(this.hashAlg).size);
    this.pendingCaller = undefined;
    this.lastCaller = nonceCaller;
    return encode(TPMS_AUTH_COMMAND, {
      sessionHandle: this.handle,
      nonce: nonceCaller,
      sessionAttributes: this.attrs,
      hmac: this.commandHmac(ctx, nonceCaller),
    });
  }

  response(ctx: AuthContext, rsp: AuthResponse): void {
    this.checkResponseHmac(ctx, rsp);
    this.nonceTpm = rsp.nonce;
  }

  /** HMAC and encryption key: sessionKey || authValue (Part 1, sections 19.6.5 and 21.1). */
  protected keyFor(entityAuth: Uint8Array): Uint8Array {
    return concat(this.sessionKey, trimAuth(entityAuth));
  }

  /**
   * AES-CFB parameter encryption (Part 1, section 21.3): key || IV =
   * KDFa(hash, sessionKey || authValue, "CFB", nonceNewer, nonceOlder, keyBits + 128).
   */
  private cfb(
    data: Uint8Array,
    entityAuth: Uint8Array,
    newer: Uint8Array,
    older: Uint8Array,
    decipher: boolean,
  ): Uint8Array {
    const bits = this.aesKeyBits;
    const kiv = kdfa(this.hashAlg, this.keyFor(entityAuth), "CFB", newer, older, bits + 128);
    const alg = `aes-${bits}-cfb`;
    const c = decipher
      ? createDecipheriv(alg, kiv.subarray(0, bits / 8), kiv.subarray(bits / 8))
      : createCipheriv(alg, kiv.subarray(0, bits / 8), kiv.subarray(bits / 8));
    return new Uint8Array(Buffer.concat([c.update(data), c.final()]));
  }

  /** Encrypts the first command parameter's data (after prepare()). */
  encryptParameter(data: Uint8Array, entityAuth: Uint8Array): Uint8Array {
    if (!this.pendingCaller) this.prepare();
    return this.cfb(data, entityAuth, this.pendingCaller!, this.nonceTpm, false);
  }

  /** Decrypts the first response parameter's data (after response()). */
  decryptParameter(data: Uint8Array, entityAuth: Uint8Array): Uint8Array {
    return this.cfb(data, entityAuth, this.nonceTpm, this.lastCaller, true);
  }
}

/**
 * An HMAC session: unbound, salted or not. The HMAC key is sessionKey || authValue, so with a
 * salt (TPM2_StartAuthSession with tpmKey) an observer who knows the authValue still cannot
 * forge or read protected parameters.
 */
export class HmacSession extends NonceSession {
  protected commandHmac(ctx: AuthContext, nonceCaller: Uint8Array): Uint8Array {
    // Part 1, section 19.6.5: HMAC(sessionKey || authValue, cpHash || nonceNewer || nonceOlder || attrs).
    return hmac(
      this.hashAlg,
      this.keyFor(ctx.entityAuth),
      concat(ctx.cpHash(this.hashAlg), nonceCaller, this.nonceTpm, Uint8Array.of(this.attrs)),
    );
  }
  protected checkResponseHmac(ctx: AuthContext, rsp: AuthResponse): void {
    const expected = hmac(
      this.hashAlg,
      this.keyFor(ctx.entityAuth),
      concat(ctx.rpHash(this.hashAlg), rsp.nonce, this.lastCaller, Uint8Array.of(rsp.sessionAttributes)),
    );
    if (!secretsEqual(expected, rsp.hmac)) {
      throw tpmError(
        "TPM_ERR_RESPONSE_HMAC",
        `response HMAC of session 0x${this.handle.toString(16)} does not verify`,
      );
    }
  }
  override toString(): string {
    return `HmacSession(0x${this.handle.toString(16)})`;
  }
}

/**
 * A policy session. After TPM2_PolicyAuthValue call {@link requireAuthValue} and the session
 * HMACs like an HMAC session; after TPM2_PolicyPassword call {@link requirePassword}.
 */
export class PolicySession extends NonceSession {
  private mode: "none" | "hmac" | "password" = "none";

  requireAuthValue(): void {
    this.mode = "hmac";
  }
  requirePassword(): void {
    this.mode = "password";
  }
  protected commandHmac(ctx: AuthContext, nonceCaller: Uint8Array): Uint8Array {
    if (this.mode === "password") return ctx.entityAuth;
    if (this.mode === "none") return new Uint8Array(0);
    return hmac(
      this.hashAlg,
      this.keyFor(ctx.entityAuth),
      concat(ctx.cpHash(this.hashAlg), nonceCaller, this.nonceTpm, Uint8Array.of(this.attrs)),
    );
  }
  protected checkResponseHmac(ctx: AuthContext, rsp: AuthResponse): void {
    if (this.mode !== "hmac") return;
    const expected = hmac(
      this.hashAlg,
      this.keyFor(ctx.entityAuth),
      concat(ctx.rpHash(this.hashAlg), rsp.nonce, this.lastCaller, Uint8Array.of(rsp.sessionAttributes)),
    );
    if (!secretsEqual(expected, rsp.hmac)) {
      throw tpmError(
        "TPM_ERR_RESPONSE_HMAC",
        `response HMAC of policy session 0x${this.handle.toString(16)} does not verify`,
      );
    }
  }
  override toString(): string {
    return `PolicySession(0x${this.handle.toString(16)})`;
  }
}

/**
 * The one generic command executor (as go-tpm tpm2/'s `Execute`): marshals the command
 * header, handle area, authorization area and parameters (TCG TPM 2.0 Library Part 1,
 * section 18.2, "Command/Response Header Fields" and 18.7-18.9), sends it through a
 * {@link Transport}, and unmarshals the response, verifying each session's response.
 *
 * Each command is data: a {@link CommandSpec} (commands.ts) names its code, how many
 * handles it takes, whether it returns a handle, and the codecs of its parameter areas.
 */
import { channel } from "node:diagnostics_channel";
import { performance } from "node:perf_hooks";
import { Reader, Writer, decode, encode, type Codec } from "../core/codec.js";
import { hash } from "./alg.js";
import { TPM_ST } from "./constants.js";
import { isTpmError, tpmError } from "./errors.js";
import { concat, handleName, u32 } from "./names.js";
import { decodeResponseCode, formatResponseCode, RC } from "./rc.js";
import { TPMS_AUTH_RESPONSE, type AuthContext, type Session } from "./sessions.js";
import type { Transport } from "./transport/transport.js";

export interface CommandSpec<P, R> {
  /** Spec name without prefix, e.g. `Quote` for TPM2_Quote. */
  readonly name: string;
  /** TPM_CC. */
  readonly cc: number;
  /** Number of handles in the handle area (authorized ones first, as in Part 3). */
  readonly handles: number;
  /** True when the response has a handle area (one handle). */
  readonly responseHandle: boolean;
  readonly params: Codec<P>;
  readonly response: Codec<R>;
}

/** A handle in the handle area, with what authorizing it needs. */
export interface HandleRef {
  readonly handle: number;
  /** The entity's Name; derived from the handle for PCRs, permanent handles and sessions. */
  readonly name?: Uint8Array;
  /** The entity's authValue, for HMAC sessions (never sent in clear by them). */
  readonly auth?: Uint8Array;
}

export interface CommandResult<R> {
  readonly handle?: number;
  readonly params: R;
  /** The response parameter area as received. */
  readonly rawParams: Uint8Array;
}

function nameFor(h: HandleRef): Uint8Array {
  return h.name ?? handleName(h.handle);
}

/** Builds the command bytes; exported for tests and transcripts. */
export function marshalCommand<P>(
  spec: CommandSpec<P, unknown>,
  handles: readonly HandleRef[],
  sessions: readonly Session[],
  params: P,
): { bytes: Uint8Array; paramBytes: Uint8Array; cpHash: (alg: number) => Uint8Array } {
  if (handles.length !== spec.handles) {
    throw tpmError(
      "TPM_ERR_INVALID_ARGUMENT",
      `TPM2_${spec.name} takes ${spec.handles} handles, got ${handles.length}`,
    );
  }
  if (sessions.length > spec.handles) {
    throw tpmError(
      "TPM_ERR_INVALID_ARGUMENT",
      `TPM2_${spec.name} authorizes at most ${spec.handles} handles`,
    );
  }
  let paramBytes = encode(spec.params, params);
  for (const sess of sessions) sess.prepare?.();
  // Parameter encryption happens before cpHash, which covers the parameters as sent (Part 1, 21.1).
  const enc = sessions.findIndex((sess) => sess.decryptsCommand);
  const encSession = sessions[enc];
  if (encSession?.encryptParameter) {
    const auth = handles[enc]?.auth ?? new Uint8Array(0);
    paramBytes = mapFirstParameter(paramBytes, (d) => encSession.encryptParameter!(d, auth), spec.name);
  }
  const cache = new Map<number, Uint8Array>();
  const cpHash = (alg: number): Uint8Array => {
    let v = cache.get(alg);
    if (!v) cache.set(alg, (v = hash(alg, u32(spec.cc), ...handles.map(nameFor), paramBytes)));
    return v;
  };
  const w = new Writer(64 + paramBytes.length);
  w.u16(sessions.length ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS, false);
  w.u32(0, false);
  w.u32(spec.cc, false);
  for (const h of handles) w.u32(h.handle, false);
  if (sessions.length) {
    const areas = sessions.map((s, i) =>
      s.command({
        cpHash,
        rpHash: () => new Uint8Array(0),
        entityAuth: handles[i]?.auth ?? new Uint8Array(0),
      }),
    );
    const auth = concat(...areas);
    w.u32(auth.length, false);
    w.bytes(auth);
  }
  w.bytes(paramBytes);
  const bytes = w.finish();
  new DataView(bytes.buffer).setUint32(2, bytes.length, false);
  return { bytes, paramBytes, cpHash };
}

/** A message on {@link tpmCommandChannel}: one command sent and answered. */
export interface TpmCommandMessage {
  /** `TPM2_Quote`, ... */
  readonly command: string;
  readonly commandCode: number;
  /** The TPM_RC of the response (0 = success); decode it with rc.ts. */
  readonly responseCode: number;
  /** 1 for the first try; more when the TPM asked for a retry. */
  readonly attempt: number;
  readonly durationMs: number;
}

/**
 * `bulwark:tpm:command` (node:diagnostics_channel): one {@link TpmCommandMessage} per exchange
 * with the TPM. Codes and timings only: parameters carry auth values and secrets and are never
 * published. Costs one property read per command when nobody subscribes.
 */
export const tpmCommandChannel = channel("bulwark:tpm:command");

/** Sends one command and returns its decoded response; a non-zero TPM_RC is a TpmError. */
export async function execute<P, R>(
  transport: Transport,
  spec: CommandSpec<P, R>,
  handles: readonly HandleRef[],
  sessions: readonly Session[],
  params: P,
): Promise<CommandResult<R>> {
  // TPM_RC_RETRY, _YIELDED and _TESTING are warnings asking the caller to send the command
  // again (Part 2, Table 16); the command is re-marshaled so sessions use fresh nonces.
  for (let attempt = 1; ; attempt++) {
    const { bytes } = marshalCommand(spec, handles, sessions, params);
    const started = tpmCommandChannel.hasSubscribers ? performance.now() : 0;
    const rsp = await transport.send(bytes);
    const rc = rsp.length >= 10 ? new DataView(rsp.buffer, rsp.byteOffset).getUint32(6, false) : 0;
    if (tpmCommandChannel.hasSubscribers) {
      const message: TpmCommandMessage = {
        command: `TPM2_${spec.name}`,
        commandCode: spec.cc,
        responseCode: rc,
        attempt,
        durationMs: started ? performance.now() - started : 0,
      };
      tpmCommandChannel.publish(message);
    }
    if (attempt < MAX_ATTEMPTS && RETRYABLE.has(rc)) {
      await new Promise((r) => setTimeout(r, 5 * attempt));
      continue;
    }
    return unmarshalResponse(spec, handles, sessions, rsp);
  }
}

const MAX_ATTEMPTS = 10;
const RETRYABLE: ReadonlySet<number> = new Set([RC.RETRY, RC.YIELDED, RC.TESTING]);

/** Parses response bytes for `spec` (Part 1, section 18.8); exported for tests. */
export function unmarshalResponse<R>(
  spec: CommandSpec<unknown, R>,
  handles: readonly HandleRef[],
  sessions: readonly Session[],
  rsp: Uint8Array,
): CommandResult<R> {
  const r = new Reader(rsp);
  const malformed = (why: string): never => {
    throw tpmError("TPM_ERR_MALFORMED_RESPONSE", `TPM2_${spec.name} response: ${why}`);
  };
  if (rsp.length < 10) malformed(`only ${rsp.length} bytes`);
  const tag = r.u16(false);
  const size = r.u32(false);
  const rc = r.u32(false);
  if (size !== rsp.length) malformed(`responseSize ${size} but ${rsp.length} bytes received`);
  if (rc !== 0) {
    const info = decodeResponseCode(rc);
    // TPM_RC_INTEGRITY: protected data we sent (a credential blob, a private area, a duplicate)
    // failed the TPM's integrity HMAC — altered, or made for another key or name. It gets its own
    // code because the caller must treat it as tampering, not as a TPM that refused a command.
    throw tpmError(
      info.base === RC.INTEGRITY ? "TPM_ERR_INTEGRITY" : "TPM_ERR_RESPONSE_CODE",
      `TPM2_${spec.name}: ${formatResponseCode(info)}`,
      { command: `TPM2_${spec.name}`, ...info },
    );
  }
  if (tag !== TPM_ST.SESSIONS && tag !== TPM_ST.NO_SESSIONS) malformed(`tag 0x${tag.toString(16)}`);
  if ((tag === TPM_ST.SESSIONS) !== sessions.length > 0) malformed("session tag does not match the command");
  try {
    const handle = spec.responseHandle ? r.u32(false) : undefined;
    let rawParams: Uint8Array;
    if (tag === TPM_ST.SESSIONS) {
      const paramSize = r.u32(false);
      rawParams = r.take(paramSize);
      const rpHashCache = new Map<number, Uint8Array>();
      const rpHash = (alg: number): Uint8Array => {
        let v = rpHashCache.get(alg);
        if (!v) rpHashCache.set(alg, (v = hash(alg, u32(0), u32(spec.cc), rawParams)));
        return v;
      };
      for (const [i, s] of sessions.entries()) {
        const auth = r.at(`auth[${i}]`, () => TPMS_AUTH_RESPONSE.decode(r));
        const ctx: AuthContext = {
          cpHash: () => new Uint8Array(0),
          rpHash,
          entityAuth: handles[i]?.auth ?? new Uint8Array(0),
        };
        s.response(ctx, auth);
      }
      r.expectEnd();
      const dec = sessions.findIndex((sess) => sess.encryptsResponse);
      const decSession = sessions[dec];
      if (decSession?.decryptParameter) {
        const auth = handles[dec]?.auth ?? new Uint8Array(0);
        rawParams = mapFirstParameter(
          rawParams,
          (d) => decSession.decryptParameter!(d, auth),
          spec.name,
          "TPM_ERR_MALFORMED_RESPONSE",
        );
      }
    } else {
      rawParams = r.take(r.remaining);
    }
    const params = decode(spec.response, rawParams);
    return { ...(handle !== undefined ? { handle } : {}), params, rawParams };
  } catch (e) {
    if (isTpmError(e)) throw e;
    const msg = e instanceof Error ? e.message : String(e);
    throw tpmError("TPM_ERR_MALFORMED_RESPONSE", `TPM2_${spec.name} response: ${msg}`, {}, { cause: e });
  }
}

/** Applies `fn` to the data of the first parameter, which must be a TPM2B (Part 1, section 21.1). */
function mapFirstParameter(
  params: Uint8Array,
  fn: (data: Uint8Array) => Uint8Array,
  name: string,
  code: "TPM_ERR_INVALID_ARGUMENT" | "TPM_ERR_MALFORMED_RESPONSE" = "TPM_ERR_INVALID_ARGUMENT",
): Uint8Array {
  const size = params.length >= 2 ? ((params[0] ?? 0) << 8) | (params[1] ?? 0) : -1;
  if (size < 0 || size + 2 > params.length) {
    throw tpmError(code, `TPM2_${name}: first parameter is not a TPM2B, cannot encrypt it`);
  }
  const out = params.slice();
  out.set(fn(params.subarray(2, 2 + size)), 2);
  return out;
}

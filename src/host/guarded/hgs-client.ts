/**
 * The guarded host's HGS client: what the VM runtime calls to attest and to ask for a VM's
 * keys. It talks HTTPS to a primary URL and, when that does not answer (connection refused,
 * reset, timeout, TLS failure, a response that is not JSON, or 503), to each fallback URL in
 * turn, like Hyper-V's fallback HGS URLs.
 * Refusals (4xx) are not retried elsewhere: every node of a fabric gives the same answer.
 *
 * ```ts
 * const hgs = new HgsClient({ urls: ["https://hgs1:8443", "https://hgs2:8443"], ca: tlsCertPem });
 * const { healthCertificate } = await hgs.attestHostKey({ hostKey, keyReleaseKey });
 * const r = await hgs.releaseKey({ healthCertificate, keyReleaseKey, keyProtector });
 * // r.keyProtector: store it (atomically) as the VM's new key protector; r.newKey unlocks it.
 * // r.oldKey opens state sealed under the previous key. Zeroize both keys when done.
 * ```
 *
 * Secrets never leave the host in clear: the host key and the key-release key only sign;
 * released keys arrive encrypted to the key-release key. Nothing here logs.
 */
import { randomBytes, createPublicKey, type KeyObject } from "node:crypto";
import https from "node:https";
import http from "node:http";
import { encode } from "../../core/codec.js";
import { BulwarkError } from "../../core/errors.js";
import { TPM_ALG } from "../../tpm/alg.js";
import type { KeyRef, Tpm } from "../../tpm/client.js";
import { TPMT_SIGNATURE } from "../../tpm/structures.js";
import { quoteQualifyingData, REQUIRED_SELECTION, tpm2bPublicBytes } from "../../attest/tpm-wire.js";
import { parseKeyProtector } from "../../protector/key-protector.js";
import type { TransportKey } from "../../protector/transport-key.js";
import { hgsError } from "../../attest/errors.js";
import { attestKeyMessage, keyId, signWithHostKey, spkiDer } from "../../attest/host-key.js";
import { parseHealthCertificate } from "../../attest/health.js";
import {
  keysContext,
  releaseMessage,
  signRelease,
  unwrapKeys,
  type WrappedKeysJson,
} from "../../attest/release.js";
import type { AttestationVerdict } from "../../attest/verdict.js";

export interface HgsClientOptions {
  /** Primary first, then fallbacks. */
  readonly urls: readonly string[];
  /** PEM of the HGS TLS certificate (or its CA) to trust; default: the system store. */
  readonly ca?: string;
  /** Per-request timeout (default 10 s). */
  readonly timeoutMs?: number;
  /**
   * Replaces the network (e.g. fastify `inject` for in-process tests); gets the base URL,
   * method, path and JSON body, returns the status and parsed JSON.
   */
  readonly send?: (
    base: string,
    method: string,
    path: string,
    body: unknown,
  ) => Promise<{ status: number; json: unknown }>;
}

export interface HgsInfo {
  readonly mode: "key" | "tpm";
  readonly signerId: string;
  readonly signerCertificate: string;
  readonly guardian: string;
  readonly guardianThumbprint: string;
}

export interface AttestOutcome {
  readonly verdict: AttestationVerdict;
  readonly healthCertificate: string;
  readonly validUntil: string;
}

export interface ReleaseOutcome {
  readonly keyProtector: Uint8Array;
  readonly oldKey: TransportKey;
  readonly newKey: TransportKey;
}

/** An HGS refusal: the server's error code and details, and the verdict when attestation failed. */
export class HgsRefusal extends BulwarkError {
  constructor(
    code: string,
    message: string,
    details: Record<string, unknown>,
    readonly status: number,
    readonly verdict?: AttestationVerdict,
  ) {
    super(code, message, details);
    this.name = "HgsRefusal";
  }
}

export class HgsClient {
  private readonly agents = new Map<string, http.Agent>();
  /** The URL that answered last (tried first next time). */
  current = 0;

  constructor(readonly options: HgsClientOptions) {
    if (options.urls.length === 0) throw hgsError("HGS_ERR_CONFIG", "at least one HGS URL is needed");
  }

  private agent(url: URL): http.Agent {
    let a = this.agents.get(url.origin);
    if (!a) {
      a =
        url.protocol === "https:"
          ? new https.Agent({ keepAlive: true, ...(this.options.ca ? { ca: this.options.ca } : {}) })
          : new http.Agent({ keepAlive: true });
      this.agents.set(url.origin, a);
    }
    return a;
  }

  close(): void {
    for (const a of this.agents.values()) a.destroy();
    this.agents.clear();
  }

  private once(
    base: string,
    method: string,
    path: string,
    body: unknown,
  ): Promise<{ status: number; json: unknown }> {
    if (this.options.send) return this.options.send(base, method, path, body);
    const url = new URL(path, base);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const mod = url.protocol === "https:" ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.request(
        url,
        {
          method,
          agent: this.agent(url),
          timeout: this.options.timeoutMs ?? 10_000,
          headers: payload ? { "content-type": "application/json", "content-length": payload.length } : {},
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on("data", (c: Buffer) => {
            size += c.length;
            if (size > 4 * 1024 * 1024) res.destroy(new Error("response too large"));
            else chunks.push(c);
          });
          res.on("end", () => {
            try {
              resolve({
                status: res.statusCode ?? 0,
                json: JSON.parse(Buffer.concat(chunks).toString("utf8")),
              });
            } catch (e) {
              reject(e instanceof Error ? e : new Error(String(e)));
            }
          });
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(Object.assign(new Error("timeout"), { code: "ETIMEDOUT" })));
      req.on("error", reject);
      req.end(payload);
    });
  }

  /** Sends to the current URL, moving on to the next when a node does not answer. */
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const urls = this.options.urls;
    let lastError: unknown;
    const failures: string[] = [];
    for (let k = 0; k < urls.length; k++) {
      const i = (this.current + k) % urls.length;
      let r: { status: number; json: unknown };
      try {
        r = await this.once(urls[i] as string, method, path, body);
      } catch (e) {
        // Refused, reset, timed out, TLS failure, not JSON: this node did not answer; try the next.
        failures.push(`${urls[i]}: ${(e as { code?: string }).code ?? (e as Error).message}`);
        lastError = e;
        continue;
      }
      if (r.status === 503) {
        failures.push(`${urls[i]}: 503`);
        lastError = new Error(`HGS ${urls[i]} answered 503`);
        continue;
      }
      this.current = i;
      if (r.status >= 200 && r.status < 300) return r.json as T;
      const b = r.json as {
        error?: { code?: string; message?: string; details?: Record<string, unknown> };
        verdict?: AttestationVerdict;
      };
      throw new HgsRefusal(
        b.error?.code ?? "HGS_ERR_UNAVAILABLE",
        b.error?.message ?? `HTTP ${r.status}`,
        b.error?.details ?? {},
        r.status,
        b.verdict,
      );
    }
    throw hgsError(
      "HGS_ERR_UNAVAILABLE",
      `no HGS answered (${failures.join("; ")})`,
      { urls: [...urls], failures },
      { cause: lastError },
    );
  }

  info(): Promise<HgsInfo> {
    return this.request("GET", "/host/v1/info");
  }

  challenge(hostId: string): Promise<{ nonce: string; expiresAt: string; mode: string }> {
    return this.request("POST", "/host/v1/challenge", { hostId });
  }

  /** Host-key attestation: challenge, sign, attest. */
  async attestHostKey(o: { hostKey: KeyObject; keyReleaseKey: KeyObject }): Promise<AttestOutcome> {
    const hostId = keyId(o.hostKey);
    const { nonce } = await this.challenge(hostId);
    const krkPub = createPublicKey(o.keyReleaseKey);
    const signature = signWithHostKey(o.hostKey, attestKeyMessage(Buffer.from(nonce, "hex"), krkPub, hostId));
    return this.request("POST", "/host/v1/attest/key", {
      hostId,
      nonce,
      keyReleaseKey: spkiDer(krkPub).toString("base64"),
      signature: signature.toString("base64"),
    });
  }

  /**
   * TPM mode, once per AK: proves to HGS that `ak` lives in the TPM holding the registered EK
   * (HGS makes a credential to the EK for the AK's name; only that TPM can activate it).
   */
  async enrollAk(o: { hostId: string; tpm: Tpm; ek: KeyRef; ak: KeyRef }): Promise<{ akName: string }> {
    const c = await this.request<{ challengeId: string; credentialBlob: string; encryptedSecret: string }>(
      "POST",
      "/host/v1/tpm/ak/challenge",
      { hostId: o.hostId, akPublic: tpm2bPublicBytes(o.ak.public).toString("base64") },
    );
    const session = await o.tpm.ekPolicySession();
    let secret: Uint8Array;
    try {
      secret = await o.tpm.activateCredential(
        o.ak,
        o.ek,
        Buffer.from(c.credentialBlob, "base64"),
        Buffer.from(c.encryptedSecret, "base64"),
        {
          ek: session,
        },
      );
    } finally {
      await o.tpm.flushContext(session.handle).catch(() => undefined);
    }
    return this.request("POST", "/host/v1/tpm/ak/activate", {
      hostId: o.hostId,
      challengeId: c.challengeId,
      secret: Buffer.from(secret).toString("base64"),
    });
  }

  /** TPM mode: quote over sha256 PCRs 0..9 with the nonce bound to the key-release key, plus the event log. */
  async attestTpm(o: {
    hostId: string;
    tpm: Tpm;
    ak: KeyRef;
    keyReleaseKey: KeyObject;
    eventLog: Uint8Array;
  }): Promise<AttestOutcome> {
    const { nonce } = await this.challenge(o.hostId);
    const evidence = await tpmEvidence(
      o.tpm,
      o.ak,
      Buffer.from(nonce, "hex"),
      createPublicKey(o.keyReleaseKey),
    );
    return this.request("POST", "/host/v1/attest/tpm", {
      hostId: o.hostId,
      nonce,
      keyReleaseKey: spkiDer(createPublicKey(o.keyReleaseKey)).toString("base64"),
      ...evidence,
      eventLog: Buffer.from(o.eventLog).toString("base64"),
    });
  }

  /** Asks for a VM's keys; returns the rolled key protector and both transport keys. */
  async releaseKey(o: {
    healthCertificate: string;
    keyReleaseKey: KeyObject;
    keyProtector: Uint8Array;
  }): Promise<ReleaseOutcome> {
    const body = releaseRequestBody(o.healthCertificate, o.keyReleaseKey, o.keyProtector);
    const r = await this.request<{
      keyProtector: string;
      oldKeyGeneration: number;
      newKeyGeneration: number;
      keys: WrappedKeysJson;
    }>("POST", "/host/v1/keys/release", body);
    return openReleaseResponse(o.keyReleaseKey, r);
  }
}

/** Builds a signed key-release request body (exported for tests and other transports). */
export function releaseRequestBody(
  healthCertificate: string,
  keyReleaseKey: KeyObject,
  keyProtector: Uint8Array,
  now = Date.now(),
) {
  const requestId = randomBytes(16);
  const jti = parseHealthCertificate(healthCertificate).claims.jti;
  const signature = signRelease(keyReleaseKey, releaseMessage(requestId, now, keyProtector, jti));
  return {
    healthCertificate,
    keyProtector: Buffer.from(keyProtector).toString("base64"),
    requestId: requestId.toString("hex"),
    timestamp: now,
    signature: signature.toString("base64"),
  };
}

/** Opens a key-release response: checks the new key protector and unwraps both keys. */
export function openReleaseResponse(
  keyReleaseKey: KeyObject,
  r: { keyProtector: string; oldKeyGeneration: number; newKeyGeneration: number; keys: WrappedKeysJson },
): ReleaseOutcome {
  const kp = Buffer.from(r.keyProtector, "base64");
  const parsed = parseKeyProtector(kp);
  if (parsed.keyGeneration !== r.newKeyGeneration) {
    throw hgsError(
      "HGS_ERR_KEY_PROTECTOR",
      "the returned key protector's generation does not match the response",
    );
  }
  const ctx = keysContext(parsed.protectorId, r.oldKeyGeneration, r.newKeyGeneration, kp);
  const { oldKey, newKey } = unwrapKeys(keyReleaseKey, r.keys, ctx);
  return {
    keyProtector: kp,
    oldKey: { key: oldKey, protectorId: parsed.protectorId, keyGeneration: r.oldKeyGeneration },
    newKey: { key: newKey, protectorId: parsed.protectorId, keyGeneration: r.newKeyGeneration },
  };
}

/** Quotes and reads the PCRs HGS requires; JSON-ready (base64 quote and signature, hex PCRs). */
export async function tpmEvidence(
  tpm: Tpm,
  ak: KeyRef,
  nonce: Uint8Array,
  keyReleaseKey: KeyObject,
): Promise<{ quote: string; signature: string; pcrs: Record<string, string> }> {
  const q = await tpm.quote(ak, quoteQualifyingData(nonce, keyReleaseKey), REQUIRED_SELECTION);
  const { values } = await tpm.pcrRead(REQUIRED_SELECTION);
  const bank = values.get(TPM_ALG.SHA256) ?? new Map<number, Uint8Array>();
  return {
    quote: Buffer.from(q.quoted).toString("base64"),
    signature: Buffer.from(encode(TPMT_SIGNATURE, q.signature)).toString("base64"),
    pcrs: Object.fromEntries([...bank].map(([i, v]) => [String(i), Buffer.from(v).toString("hex")])),
  };
}

/**
 * The route table: each route's schemas, body limit and handler in one place. The server
 * registers them with fastify and the OpenAPI document is generated from the same table.
 */
import * as admin from "../admin.js";
import { attestHostKey, type KeyAttestRequest } from "../attest-key.js";
import { attestationRefusal, issueChallenge, type AttestResult } from "../attestation.js";
import type { HgsContext } from "../context.js";
import { releaseKey, type ReleaseRequest } from "../release.js";
import type { HgsSettings } from "../settings.js";
import * as S from "./schemas.js";

export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface RouteInput {
  readonly body: unknown;
  readonly params: Record<string, string>;
  readonly query: Record<string, unknown>;
}

export interface RouteDef {
  readonly method: Method;
  readonly url: string;
  readonly summary: string;
  readonly tag: "host" | "admin" | "meta";
  readonly admin: boolean;
  readonly bodyLimit: number;
  readonly body?: S.Schema;
  readonly params?: S.Schema;
  readonly querystring?: S.Schema;
  readonly response: Readonly<Record<number, S.Schema>>;
  handler(ctx: HgsContext, input: RouteInput): Promise<{ status?: number; body: unknown }>;
}

export const SMALL_BODY = 16 * 1024;
export const RELEASE_BODY = 512 * 1024;
export const TPM_ATTEST_BODY = 2 * 1024 * 1024;

const ok = (body: unknown) => ({ body });
const idParam = S.object({ id: S.text(128) });

/** A refused attestation: 403 with the verdict beside the error. */
export function attestReply(r: AttestResult): { status?: number; body: unknown } {
  if (r.healthCertificate) return { body: r };
  const e = attestationRefusal(r.verdict);
  return {
    status: 403,
    body: { error: { code: e.code, message: e.message, details: e.details }, verdict: r.verdict },
  };
}

const err = {
  500: S.errorBody,
  503: S.errorBody,
  400: S.errorBody,
  401: S.errorBody,
  403: S.errorBody,
  404: S.errorBody,
  409: S.errorBody,
  413: S.errorBody,
};

export const baseRoutes: RouteDef[] = [
  {
    method: "GET",
    url: "/health",
    summary: "Liveness and database reachability of this node.",
    tag: "meta",
    admin: false,
    bodyLimit: 0,
    response: { 200: S.out({ ok: { type: "boolean" }, mode: { type: "string" } }), ...err },
    handler: async (ctx) => ok({ ok: true, mode: (await admin.readSettings(ctx)).mode }),
  },
  {
    method: "GET",
    url: "/host/v1/info",
    summary: "Public facts a host needs: attestation mode, attestation signer, HGS guardian (PEM).",
    tag: "host",
    admin: false,
    bodyLimit: 0,
    response: {
      200: S.out({
        mode: { type: "string" },
        signerId: { type: "string" },
        signerCertificate: { type: "string" },
        guardian: { type: "string" },
        guardianThumbprint: { type: "string" },
      }),
      ...err,
    },
    handler: async (ctx) =>
      ok({
        mode: (await admin.readSettings(ctx)).mode,
        signerId: ctx.signer.id,
        signerCertificate: ctx.dir.attestationSignerCertificatePem,
        guardian: ctx.dir.guardianPublicPem,
        guardianThumbprint: ctx.guardianThumbprint,
      }),
  },
  {
    method: "POST",
    url: "/host/v1/challenge",
    summary: "A fresh single-use nonce for the host's next attestation.",
    tag: "host",
    admin: false,
    bodyLimit: 1024,
    body: S.object({ hostId: S.hostId }),
    response: {
      200: S.out({ nonce: { type: "string" }, expiresAt: { type: "string" }, mode: { type: "string" } }),
      ...err,
    },
    handler: async (ctx, i) => ok(await issueChallenge(ctx, (i.body as { hostId: string }).hostId)),
  },
  {
    method: "POST",
    url: "/host/v1/attest/key",
    summary: "Host-key attestation: the nonce and key-release key signed with the registered host key.",
    tag: "host",
    admin: false,
    bodyLimit: SMALL_BODY,
    body: S.object({
      hostId: S.hostId,
      nonce: S.nonce,
      keyReleaseKey: S.publicKeyText,
      signature: S.base64(2048),
    }),
    response: { 200: S.attestResponse, ...err },
    handler: async (ctx, i) => attestReply(await attestHostKey(ctx, i.body as KeyAttestRequest)),
  },
  {
    method: "POST",
    url: "/host/v1/keys/release",
    summary: "Key release: health certificate + key protector in; rolled key protector and wrapped keys out.",
    tag: "host",
    admin: false,
    bodyLimit: RELEASE_BODY,
    body: S.object({
      healthCertificate: S.text(8192),
      keyProtector: S.base64(RELEASE_BODY),
      requestId: S.hex(16),
      timestamp: { type: "integer", minimum: 0, maximum: 8640000000000000 },
      signature: S.base64(2048),
    }),
    response: { 200: S.releaseResponse, ...err },
    handler: async (ctx, i) => ok(await releaseKey(ctx, i.body as ReleaseRequest)),
  },
  // ---- admin ----
  {
    method: "GET",
    url: "/admin/v1/settings",
    summary: "Attestation mode, health certificate lifetime, nonce lifetime, deny-before date, EK policy.",
    tag: "admin",
    admin: true,
    bodyLimit: 0,
    response: { 200: S.settings, ...err },
    handler: async (ctx) => ok(await admin.readSettings(ctx)),
  },
  {
    method: "PATCH",
    url: "/admin/v1/settings",
    summary: 'Changes settings (switching the attestation mode is `{"mode":"key"|"tpm"}`).',
    tag: "admin",
    admin: true,
    bodyLimit: SMALL_BODY,
    body: S.settingsPatch,
    response: { 200: S.settings, ...err },
    handler: async (ctx, i) => ok(await admin.updateSettings(ctx, i.body as Partial<HgsSettings>)),
  },
  {
    method: "GET",
    url: "/admin/v1/hosts",
    summary: "Registered hosts.",
    tag: "admin",
    admin: true,
    bodyLimit: 0,
    response: { 200: S.out({ hosts: { type: "array", items: S.host } }), ...err },
    handler: async (ctx) => ok({ hosts: await admin.listHosts(ctx) }),
  },
  {
    method: "POST",
    url: "/admin/v1/hosts/key",
    summary: "Registers a host for host-key attestation by its public key (RSA >= 2048, ECDSA P-256/P-384).",
    tag: "admin",
    admin: true,
    bodyLimit: SMALL_BODY,
    body: S.object({ name: S.text(256), publicKey: S.publicKeyText }),
    response: { 200: S.host, ...err },
    handler: async (ctx, i) => {
      const b = i.body as { name: string; publicKey: string };
      return ok(await admin.addKeyHost(ctx, b.name, b.publicKey));
    },
  },
  {
    method: "GET",
    url: "/admin/v1/hosts/:id",
    summary: "One host.",
    tag: "admin",
    admin: true,
    bodyLimit: 0,
    params: idParam,
    response: { 200: S.host, ...err },
    handler: async (ctx, i) => ok(await admin.getHost(ctx, i.params.id ?? "")),
  },
  {
    method: "POST",
    url: "/admin/v1/hosts/:id/revoke",
    summary: "Revokes a host: its health certificates stop releasing keys at once.",
    tag: "admin",
    admin: true,
    bodyLimit: 0,
    params: idParam,
    response: { 200: S.host, ...err },
    handler: async (ctx, i) => ok(await admin.setRevoked(ctx, i.params.id ?? "", true)),
  },
  {
    method: "POST",
    url: "/admin/v1/hosts/:id/restore",
    summary: "Lifts a host's revocation.",
    tag: "admin",
    admin: true,
    bodyLimit: 0,
    params: idParam,
    response: { 200: S.host, ...err },
    handler: async (ctx, i) => ok(await admin.setRevoked(ctx, i.params.id ?? "", false)),
  },
  {
    method: "GET",
    url: "/admin/v1/policies",
    summary: "TPM-mode attestation policies with their state.",
    tag: "admin",
    admin: true,
    bodyLimit: 0,
    response: {
      200: S.out({
        policies: {
          type: "array",
          items: S.out({
            id: { type: "string" },
            enabled: { type: "boolean" },
            locked: { type: "boolean" },
            summary: { type: "string" },
            subStatus: { type: "string" },
          }),
        },
      }),
      ...err,
    },
    handler: async (ctx) => ok({ policies: await admin.listPolicies(ctx) }),
  },
  {
    method: "PUT",
    url: "/admin/v1/policies/:id",
    summary: "Enables or disables a policy (a locked policy cannot be disabled).",
    tag: "admin",
    admin: true,
    bodyLimit: 1024,
    params: idParam,
    body: S.object({ enabled: { type: "boolean" } }),
    response: { 200: S.out({ id: { type: "string" }, enabled: { type: "boolean" } }), ...err },
    handler: async (ctx, i) => {
      const enabled = (i.body as { enabled: boolean }).enabled;
      await admin.setPolicy(ctx, i.params.id ?? "", enabled);
      return ok({ id: i.params.id, enabled });
    },
  },
  {
    method: "GET",
    url: "/admin/v1/baselines",
    summary: "Registered baselines (format bulwark-hgs-baseline/v1).",
    tag: "admin",
    admin: true,
    bodyLimit: 0,
    response: {
      200: S.out({
        baselines: { type: "array", items: S.out({ id: { type: "string" }, baseline: S.anyObject }) },
      }),
      ...err,
    },
    handler: async (ctx) => ok({ baselines: await admin.listBaselines(ctx) }),
  },
  {
    method: "POST",
    url: "/admin/v1/baselines",
    summary: "Registers a baseline captured on a known-good host.",
    tag: "admin",
    admin: true,
    bodyLimit: 256 * 1024,
    body: S.baseline,
    response: { 200: S.out({ id: { type: "string" }, baseline: S.anyObject }), ...err },
    handler: async (ctx, i) => ok(await admin.addBaseline(ctx, i.body)),
  },
  {
    method: "DELETE",
    url: "/admin/v1/baselines/:id",
    summary: "Removes a baseline.",
    tag: "admin",
    admin: true,
    bodyLimit: 0,
    params: idParam,
    response: { 200: S.out({ removed: { type: "string" } }), ...err },
    handler: async (ctx, i) => {
      await admin.removeBaseline(ctx, i.params.id ?? "");
      return ok({ removed: i.params.id });
    },
  },
  {
    method: "GET",
    url: "/admin/v1/audit",
    summary: "Audit entries after a sequence number.",
    tag: "admin",
    admin: true,
    bodyLimit: 0,
    querystring: {
      type: "object",
      additionalProperties: false,
      properties: {
        after: { type: "string", pattern: "^[0-9]{1,15}$" },
        limit: { type: "string", pattern: "^[0-9]{1,5}$" },
      },
    },
    response: { 200: S.out({ entries: { type: "array", items: S.auditEntry } }), ...err },
    handler: async (ctx, i) =>
      ok({
        entries: await admin.listAuditEntries(ctx, Number(i.query.after ?? 0), Number(i.query.limit ?? 1000)),
      }),
  },
  {
    method: "GET",
    url: "/admin/v1/audit/verify",
    summary: "Recomputes the audit hash chain.",
    tag: "admin",
    admin: true,
    bodyLimit: 0,
    response: {
      200: S.out({
        ok: { type: "boolean" },
        entries: { type: "integer" },
        head: { type: "string" },
        findings: { type: "array", items: S.anyObject },
      }),
      ...err,
    },
    handler: async (ctx) => ok(await admin.auditVerdict(ctx)),
  },
];

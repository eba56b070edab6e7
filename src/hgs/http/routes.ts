/**
 * The route table: each route's schemas, body limit and handler in one place. The server
 * registers them with fastify and the OpenAPI document is generated from the same table.
 * Each entry goes through {@link route}, which types the handler's input from the entry's own
 * TypeBox schemas: the body a handler reads is the type fastify validated, with no cast.
 */
import { Type, type Static, type TSchema } from "@fastify/type-provider-typebox";
import * as admin from "../admin.js";
import { attestHostKey } from "../attest-key.js";
import { attestationRefusal, issueChallenge, type AttestResult } from "../attestation.js";
import type { HgsContext } from "../context.js";
import { releaseKey } from "../release.js";
import * as S from "./schemas.js";
import { errorStatuses, httpStatusOf } from "./statuses.js";

export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

/** What a schema validates, or `undefined` for a part the route does not declare. */
type Validated<T extends TSchema | undefined> = T extends TSchema ? Static<T> : undefined;

export interface RouteReply {
  readonly status?: number;
  readonly body: unknown;
}

export interface RouteSpec<
  B extends TSchema | undefined = TSchema | undefined,
  P extends TSchema | undefined = TSchema | undefined,
  Q extends TSchema | undefined = TSchema | undefined,
> {
  readonly method: Method;
  readonly url: string;
  readonly summary: string;
  readonly tag: "host" | "admin" | "meta";
  readonly admin: boolean;
  readonly bodyLimit: number;
  readonly body?: B;
  readonly params?: P;
  readonly querystring?: Q;
  readonly response: Readonly<Record<number, TSchema>>;
  handler(
    ctx: HgsContext,
    input: { readonly body: Validated<B>; readonly params: Validated<P>; readonly query: Validated<Q> },
  ): Promise<RouteReply>;
}

/** A table entry with its schema types erased; the server hands it what fastify validated. */
export type RouteDef = RouteSpec;

/** Declares a route; the handler's input types come from the schemas beside it. */
export const route = <
  B extends TSchema | undefined = undefined,
  P extends TSchema | undefined = undefined,
  Q extends TSchema | undefined = undefined,
>(
  spec: RouteSpec<B, P, Q>,
): RouteDef => spec;

export const SMALL_BODY = 16 * 1024;
export const RELEASE_BODY = 512 * 1024;
export const TPM_ATTEST_BODY = 2 * 1024 * 1024;

const ok = (body: unknown) => ({ body });
const idParam = S.object({ id: S.text(128) });

/** A refused attestation: the catalogue's status (403) with the verdict beside the error. */
export function attestReply(r: AttestResult): RouteReply {
  if (r.healthCertificate) return { body: r };
  const e = attestationRefusal(r.verdict);
  return {
    status: httpStatusOf(e.code),
    body: { error: { code: e.code, message: e.message, details: e.details }, verdict: r.verdict },
  };
}

/** The error body under every status the catalogue gives an HGS error. */
export const errorResponses: Readonly<Record<number, TSchema>> = Object.fromEntries(
  errorStatuses.map((status) => [status, S.errorBody]),
);
const err = errorResponses;

export const baseRoutes: RouteDef[] = [
  route({
    method: "GET",
    url: "/health",
    summary: "Liveness and database reachability of this node.",
    tag: "meta",
    admin: false,
    bodyLimit: 0,
    response: { 200: S.out({ ok: Type.Boolean(), mode: Type.String() }), ...err },
    handler: async (ctx) => ok({ ok: true, mode: (await admin.readSettings(ctx)).mode }),
  }),
  route({
    method: "GET",
    url: "/host/v1/info",
    summary: "Public facts a host needs: attestation mode, attestation signer, HGS guardian (PEM).",
    tag: "host",
    admin: false,
    bodyLimit: 0,
    response: {
      200: S.out({
        mode: Type.String(),
        signerId: Type.String(),
        signerCertificate: Type.String(),
        guardian: Type.String(),
        guardianThumbprint: Type.String(),
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
  }),
  route({
    method: "POST",
    url: "/host/v1/challenge",
    summary: "A fresh single-use nonce for the host's next attestation.",
    tag: "host",
    admin: false,
    bodyLimit: 1024,
    body: S.object({ hostId: S.hostId }),
    response: {
      200: S.out({ nonce: Type.String(), expiresAt: Type.String(), mode: Type.String() }),
      ...err,
    },
    handler: async (ctx, i) => ok(await issueChallenge(ctx, i.body.hostId)),
  }),
  route({
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
    handler: async (ctx, i) => attestReply(await attestHostKey(ctx, i.body)),
  }),
  route({
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
      timestamp: S.epochMs(),
      signature: S.base64(2048),
    }),
    response: { 200: S.releaseResponse, ...err },
    handler: async (ctx, i) => ok(await releaseKey(ctx, i.body)),
  }),
  // ---- admin ----
  route({
    method: "GET",
    url: "/admin/v1/settings",
    summary: "Attestation mode, health certificate lifetime, nonce lifetime, deny-before date, EK policy.",
    tag: "admin",
    admin: true,
    bodyLimit: 0,
    response: { 200: S.settings, ...err },
    handler: async (ctx) => ok(await admin.readSettings(ctx)),
  }),
  route({
    method: "PATCH",
    url: "/admin/v1/settings",
    summary: 'Changes settings (switching the attestation mode is `{"mode":"key"|"tpm"}`).',
    tag: "admin",
    admin: true,
    bodyLimit: SMALL_BODY,
    body: S.settingsPatch,
    response: { 200: S.settings, ...err },
    handler: async (ctx, i) => ok(await admin.updateSettings(ctx, i.body)),
  }),
  route({
    method: "GET",
    url: "/admin/v1/hosts",
    summary: "Registered hosts.",
    tag: "admin",
    admin: true,
    bodyLimit: 0,
    response: { 200: S.out({ hosts: Type.Array(S.host) }), ...err },
    handler: async (ctx) => ok({ hosts: await admin.listHosts(ctx) }),
  }),
  route({
    method: "POST",
    url: "/admin/v1/hosts/key",
    summary: "Registers a host for host-key attestation by its public key (RSA >= 2048, ECDSA P-256/P-384).",
    tag: "admin",
    admin: true,
    bodyLimit: SMALL_BODY,
    body: S.object({ name: S.name, publicKey: S.publicKeyText }),
    response: { 200: S.host, ...err },
    handler: async (ctx, i) => ok(await admin.addKeyHost(ctx, i.body.name, i.body.publicKey)),
  }),
  route({
    method: "GET",
    url: "/admin/v1/hosts/:id",
    summary: "One host.",
    tag: "admin",
    admin: true,
    bodyLimit: 0,
    params: idParam,
    response: { 200: S.host, ...err },
    handler: async (ctx, i) => ok(await admin.getHost(ctx, i.params.id)),
  }),
  route({
    method: "POST",
    url: "/admin/v1/hosts/:id/revoke",
    summary: "Revokes a host: its health certificates stop releasing keys at once.",
    tag: "admin",
    admin: true,
    bodyLimit: 0,
    params: idParam,
    response: { 200: S.host, ...err },
    handler: async (ctx, i) => ok(await admin.setRevoked(ctx, i.params.id, true)),
  }),
  route({
    method: "POST",
    url: "/admin/v1/hosts/:id/restore",
    summary: "Lifts a host's revocation.",
    tag: "admin",
    admin: true,
    bodyLimit: 0,
    params: idParam,
    response: { 200: S.host, ...err },
    handler: async (ctx, i) => ok(await admin.setRevoked(ctx, i.params.id, false)),
  }),
  route({
    method: "GET",
    url: "/admin/v1/policies",
    summary: "TPM-mode attestation policies with their state.",
    tag: "admin",
    admin: true,
    bodyLimit: 0,
    response: {
      200: S.out({
        policies: Type.Array(
          S.out({
            id: Type.String(),
            enabled: Type.Boolean(),
            locked: Type.Boolean(),
            summary: Type.String(),
            subStatus: Type.String(),
          }),
        ),
      }),
      ...err,
    },
    handler: async (ctx) => ok({ policies: await admin.listPolicies(ctx) }),
  }),
  route({
    method: "PUT",
    url: "/admin/v1/policies/:id",
    summary: "Enables or disables a policy (a locked policy cannot be disabled).",
    tag: "admin",
    admin: true,
    bodyLimit: 1024,
    params: idParam,
    body: S.object({ enabled: Type.Boolean() }),
    response: { 200: S.out({ id: Type.String(), enabled: Type.Boolean() }), ...err },
    handler: async (ctx, i) => {
      await admin.setPolicy(ctx, i.params.id, i.body.enabled);
      return ok({ id: i.params.id, enabled: i.body.enabled });
    },
  }),
  route({
    method: "GET",
    url: "/admin/v1/baselines",
    summary: "Registered baselines (format bulwark-hgs-baseline/v1).",
    tag: "admin",
    admin: true,
    bodyLimit: 0,
    response: {
      200: S.out({
        baselines: Type.Array(S.out({ id: Type.String(), baseline: S.anyObject })),
      }),
      ...err,
    },
    handler: async (ctx) => ok({ baselines: await admin.listBaselines(ctx) }),
  }),
  route({
    method: "POST",
    url: "/admin/v1/baselines",
    summary: "Registers a baseline captured on a known-good host.",
    tag: "admin",
    admin: true,
    bodyLimit: 256 * 1024,
    body: S.baseline,
    response: { 200: S.out({ id: Type.String(), baseline: S.anyObject }), ...err },
    handler: async (ctx, i) => ok(await admin.addBaseline(ctx, i.body)),
  }),
  route({
    method: "DELETE",
    url: "/admin/v1/baselines/:id",
    summary: "Removes a baseline.",
    tag: "admin",
    admin: true,
    bodyLimit: 0,
    params: idParam,
    response: { 200: S.out({ removed: Type.String() }), ...err },
    handler: async (ctx, i) => {
      await admin.removeBaseline(ctx, i.params.id);
      return ok({ removed: i.params.id });
    },
  }),
  route({
    method: "GET",
    url: "/admin/v1/audit",
    summary: "Audit entries after a sequence number.",
    tag: "admin",
    admin: true,
    bodyLimit: 0,
    // Query strings arrive as text and nothing is coerced: the digits are checked here and
    // converted by the handler.
    querystring: S.object({
      after: Type.Optional(Type.String({ pattern: "^[0-9]{1,15}$" })),
      limit: Type.Optional(Type.String({ pattern: "^[0-9]{1,5}$" })),
    }),
    response: { 200: S.out({ entries: Type.Array(S.auditEntry) }), ...err },
    handler: async (ctx, i) =>
      ok({
        entries: await admin.listAuditEntries(ctx, Number(i.query.after ?? 0), Number(i.query.limit ?? 1000)),
      }),
  }),
  route({
    method: "GET",
    url: "/admin/v1/audit/verify",
    summary: "Recomputes the audit hash chain.",
    tag: "admin",
    admin: true,
    bodyLimit: 0,
    response: {
      200: S.out({
        ok: Type.Boolean(),
        entries: Type.Integer(),
        head: Type.String(),
        findings: Type.Array(S.anyObject),
      }),
      ...err,
    },
    handler: async (ctx) => ok(await admin.auditVerdict(ctx)),
  }),
];

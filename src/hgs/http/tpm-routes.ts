/** TPM-mode routes: host registration by EK (admin), AK enrollment by credential activation, quote attestation. */
import { Type } from "@fastify/type-provider-typebox";
import { addTpmHost, addTpmRoot } from "../admin.js";
import { akActivate, akChallenge, attestTpm } from "../attest-tpm.js";
import {
  attestReply,
  errorResponses as err,
  route,
  SMALL_BODY,
  TPM_ATTEST_BODY,
  type RouteDef,
} from "./routes.js";
import * as S from "./schemas.js";

const b = (s: string) => Buffer.from(s, "base64");

export const tpmRoutes: RouteDef[] = [
  route({
    method: "POST",
    url: "/admin/v1/hosts/tpm",
    summary:
      "Registers a host for TPM attestation by its EK public (TPM2B_PUBLIC, base64) and optional EK certificate (DER, base64).",
    tag: "admin",
    admin: true,
    bodyLimit: SMALL_BODY,
    body: S.object({
      name: S.name,
      ekPublic: S.base64(4096),
      ekCertificate: Type.Optional(S.base64(8192)),
    }),
    response: { 200: S.host, ...err },
    handler: async (ctx, { body: r }) => ({
      body: await addTpmHost(ctx, r.name, b(r.ekPublic), r.ekCertificate ? b(r.ekCertificate) : undefined),
    }),
  }),
  route({
    method: "POST",
    url: "/admin/v1/tpm-roots",
    summary: "Trusts a TPM manufacturer certificate (root or intermediate, DER base64) for EK certificates.",
    tag: "admin",
    admin: true,
    bodyLimit: SMALL_BODY,
    body: S.object({ certificate: S.base64(12 * 1024) }),
    response: { 200: S.out({ fingerprint: Type.String(), subject: Type.String() }), ...err },
    handler: async (ctx, i) => ({ body: await addTpmRoot(ctx, b(i.body.certificate)) }),
  }),
  route({
    method: "POST",
    url: "/host/v1/tpm/ak/challenge",
    summary:
      "AK enrollment: HGS checks the AK and returns a credential made to the host's EK for the AK's name.",
    tag: "host",
    admin: false,
    bodyLimit: SMALL_BODY,
    body: S.object({ hostId: S.hostId, akPublic: S.base64(4096) }),
    response: {
      200: S.out({
        challengeId: Type.String(),
        credentialBlob: Type.String(),
        encryptedSecret: Type.String(),
        expiresAt: Type.String(),
      }),
      ...err,
    },
    handler: async (ctx, { body: r }) => ({ body: await akChallenge(ctx, r.hostId, b(r.akPublic)) }),
  }),
  route({
    method: "POST",
    url: "/host/v1/tpm/ak/activate",
    summary: "AK enrollment: the secret recovered by TPM2_ActivateCredential binds the AK to the EK.",
    tag: "host",
    admin: false,
    bodyLimit: SMALL_BODY,
    body: S.object({ hostId: S.hostId, challengeId: S.nonce, secret: S.base64(256) }),
    response: { 200: S.out({ hostId: Type.String(), akName: Type.String() }), ...err },
    handler: async (ctx, { body: r }) => ({
      body: await akActivate(ctx, r.hostId, r.challengeId, b(r.secret)),
    }),
  }),
  route({
    method: "POST",
    url: "/host/v1/attest/tpm",
    summary:
      "TPM attestation: quote (qualifyingData = SHA-256(nonce ‖ SHA-256(key-release SPKI))) over sha256 PCRs 0..9, PCR values and the TCG event log.",
    tag: "host",
    admin: false,
    bodyLimit: TPM_ATTEST_BODY,
    body: S.object({
      hostId: S.hostId,
      nonce: S.nonce,
      keyReleaseKey: S.publicKeyText,
      quote: S.base64(8192),
      signature: S.base64(2048),
      pcrs: Type.Record(Type.String({ pattern: "^([0-9]|1[0-9]|2[0-3])$" }), S.hex(32), {
        additionalProperties: false,
        maxProperties: 24,
      }),
      eventLog: S.base64(1400 * 1024),
    }),
    response: { 200: S.attestResponse, ...err },
    handler: async (ctx, i) => attestReply(await attestTpm(ctx, i.body)),
  }),
];

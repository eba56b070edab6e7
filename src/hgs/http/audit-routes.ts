/**
 * The audit checkpoints route. Public on purpose: checkpoints are worth most in the hands of
 * others (an auditor, the hosts) who keep copies the HGS operator and the database administrator
 * cannot edit, and they reveal only sequence numbers, hashes over the chain and signing times —
 * how many audit entries exist, which the public /metrics already tells in aggregate. It is
 * cheap (one file read) and, like every route, behind the per-source limits.
 */
import { Type } from "@fastify/type-provider-typebox";
import { errorResponses as err, route, type RouteDef } from "./routes.js";
import * as S from "./schemas.js";

export const auditRoutes: RouteDef[] = [
  route({
    method: "GET",
    url: "/audit/v1/checkpoints",
    summary:
      "Signed audit checkpoints (seq, hash, time; ECDSA P-256 by the attestation signer) to keep and check later with `bulwark hgs audit verify --checkpoints FILE`.",
    tag: "meta",
    admin: false,
    bodyLimit: 0,
    response: {
      200: S.out({
        format: Type.String(),
        signerId: Type.String(),
        signerCertificate: Type.String(),
        checkpoints: Type.Array(
          S.out({ seq: Type.Integer(), hash: Type.String(), at: Type.Integer(), signature: Type.String() }),
        ),
      }),
      ...err,
    },
    handler: async (ctx) => ({
      body: { ...ctx.checkpoints.document(), signerCertificate: ctx.dir.attestationSignerCertificatePem },
    }),
  }),
];

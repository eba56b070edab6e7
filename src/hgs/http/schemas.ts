/**
 * JSON schemas of every HGS route, written with TypeBox so that each schema is also the
 * TypeScript type of what it validates (`Static<typeof schema>`): the route handlers receive
 * typed bodies, and nothing is cast. TypeBox emits plain JSON Schema (2020-12 subset) that both
 * Ajv, through fastify, and OpenAPI 3.1 understand. Requests are strict: unknown properties are
 * refused, strings have length bounds, and no type coercion happens.
 */
import { Type, type TSchema } from "@fastify/type-provider-typebox";

export type Schema = TSchema;

export const hex = (bytes: number) => Type.String({ pattern: `^[0-9a-f]{${bytes * 2}}$` });
export const base64 = (maxChars: number) =>
  Type.String({ maxLength: maxChars, pattern: "^[A-Za-z0-9+/]*={0,2}$" });
export const text = (max: number) => Type.String({ minLength: 1, maxLength: max });
/** Milliseconds since the epoch, bounded like a JavaScript Date. */
export const epochMs = (min = 0) => Type.Integer({ minimum: min, maximum: 8640000000000000 });

/** A request object: unknown properties are refused (Ajv runs without removeAdditional). */
export const object = <P extends Type.TProperties>(properties: P) =>
  Type.Object(properties, { additionalProperties: false });

/** A response object: extra properties are dropped by the serializer, not refused. */
export const out = <P extends Type.TProperties>(properties: P) => Type.Object(properties);

/** Any JSON object (audit details, baselines as stored, event-log facts). */
export const anyObject = Type.Unsafe<Record<string, unknown>>({ type: "object", additionalProperties: true });
export const hostId = hex(32);
export const nonce = hex(32);
export const publicKeyText = text(16 * 1024);
/**
 * A host or baseline name: only bounded here; the name rule (names.ts) answers with its own
 * code, HGS_ERR_INVALID_NAME, and says what is wrong.
 */
export const name = Type.String({ maxLength: 1024 });
export const mode = Type.Union([Type.Literal("key"), Type.Literal("tpm")]);

export const finding = out({
  id: Type.String(),
  severity: Type.Union([Type.Literal("error"), Type.Literal("warning"), Type.Literal("info")]),
  message: Type.String(),
  policy: Type.Optional(Type.String()),
  subStatus: Type.Optional(Type.String()),
  expected: Type.Optional(Type.Unknown()),
  got: Type.Optional(Type.Unknown()),
});

export const verdict = out({
  status: Type.String(),
  subStatuses: Type.Array(Type.String()),
  findings: Type.Array(finding),
});

export const errorBody = out({
  error: out({ code: Type.String(), message: Type.String(), details: Type.Optional(anyObject) }),
  verdict: Type.Optional(verdict),
});

export const attestResponse = out({
  verdict,
  healthCertificate: Type.String(),
  validUntil: Type.String(),
});

export const host = out({
  id: Type.String(),
  name: Type.String(),
  kind: mode,
  publicKey: Type.Optional(Type.String()),
  ekPublic: Type.Optional(Type.String()),
  ekCertificate: Type.Optional(Type.String()),
  akPublic: Type.Optional(Type.String()),
  revokedAt: Type.Union([Type.String(), Type.Null()]),
  certificatesNotBefore: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String(),
});

export const settings = out({
  mode,
  healthCertificateLifetimeSeconds: Type.Integer(),
  nonceTtlSeconds: Type.Integer(),
  denyBefore: Type.Integer(),
  requireEkCertificate: Type.Boolean(),
});

export const settingsPatch = Type.Object(
  {
    mode: Type.Optional(mode),
    healthCertificateLifetimeSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 604800 })),
    nonceTtlSeconds: Type.Optional(Type.Integer({ minimum: 5, maximum: 3600 })),
    denyBefore: Type.Optional(epochMs()),
    requireEkCertificate: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false, minProperties: 1 },
);

export const auditEntry = out({
  seq: Type.Integer(),
  at: Type.Integer(),
  event: Type.String(),
  hostId: Type.Union([Type.String(), Type.Null()]),
  detail: anyObject,
  prevHash: Type.String(),
  hash: Type.String(),
});

export const wrappedKeys = out({
  scheme: Type.String(),
  enc: Type.String(),
  ciphertext: Type.String(),
});

export const releaseResponse = out({
  keyProtector: Type.String(),
  protectorId: Type.String(),
  oldKeyGeneration: Type.Integer(),
  newKeyGeneration: Type.Integer(),
  keys: wrappedKeys,
});

/** sha256 PCR values keyed by PCR index; `indices` is the pattern of the allowed indices. */
export const pcrMap = (indices: string, options: { minProperties?: number; maxProperties?: number }) =>
  Type.Record(Type.String({ pattern: `^(${indices})$` }), Type.String({ pattern: "^[0-9a-fA-F]{64}$" }), {
    additionalProperties: false,
    ...options,
  });

export const baseline = object({
  format: Type.Literal("bulwark-hgs-baseline/v1"),
  kind: Type.Union([Type.Literal("secureboot"), Type.Literal("codeintegrity")]),
  name,
  bank: Type.Literal("sha256"),
  pcrs: pcrMap("4|7|8|9", { minProperties: 1 }),
  capturedAt: Type.Optional(text(64)),
  host: Type.Optional(text(256)),
  facts: Type.Optional(anyObject),
});

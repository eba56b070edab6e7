/**
 * JSON schemas of every HGS route (JSON Schema 2020-12 subset that both Ajv, through fastify,
 * and OpenAPI 3.1 understand). Requests are strict: unknown properties are refused, strings
 * have length bounds, and no type coercion happens.
 */
export type Schema = Readonly<Record<string, unknown>>;

export const hex = (bytes: number): Schema => ({ type: "string", pattern: `^[0-9a-f]{${bytes * 2}}$` });
export const base64 = (maxChars: number): Schema => ({
  type: "string",
  maxLength: maxChars,
  pattern: "^[A-Za-z0-9+/]*={0,2}$",
});
export const text = (max: number): Schema => ({ type: "string", minLength: 1, maxLength: max });

export function object(
  properties: Record<string, Schema>,
  required: readonly string[] = Object.keys(properties),
): Schema {
  return { type: "object", additionalProperties: false, properties, required: [...required] };
}

/** A response object: extra properties are dropped by the serializer, not refused. */
export function out(
  properties: Record<string, Schema>,
  required: readonly string[] = Object.keys(properties),
): Schema {
  return { type: "object", properties, required: [...required] };
}

export const anyObject: Schema = { type: "object", additionalProperties: true };
export const hostId = hex(32);
export const nonce = hex(32);
export const publicKeyText = text(16 * 1024);

export const finding: Schema = out(
  {
    id: { type: "string" },
    severity: { type: "string", enum: ["error", "warning", "info"] },
    message: { type: "string" },
    policy: { type: "string" },
    subStatus: { type: "string" },
    expected: {},
    got: {},
  },
  ["id", "severity", "message"],
);

export const verdict: Schema = out({
  status: { type: "string" },
  subStatuses: { type: "array", items: { type: "string" } },
  findings: { type: "array", items: finding },
});

export const errorBody: Schema = out(
  {
    error: out({ code: { type: "string" }, message: { type: "string" }, details: anyObject }, [
      "code",
      "message",
    ]),
    verdict,
  },
  ["error"],
);

export const attestResponse: Schema = out(
  { verdict, healthCertificate: { type: "string" }, validUntil: { type: "string" } },
  ["verdict", "healthCertificate", "validUntil"],
);

export const host: Schema = out(
  {
    id: { type: "string" },
    name: { type: "string" },
    kind: { type: "string", enum: ["key", "tpm"] },
    publicKey: { type: "string" },
    ekPublic: { type: "string" },
    ekCertificate: { type: "string" },
    akPublic: { type: "string" },
    revokedAt: { type: ["string", "null"] },
    createdAt: { type: "string" },
  },
  ["id", "name", "kind", "revokedAt", "createdAt"],
);

export const settings: Schema = out({
  mode: { type: "string", enum: ["key", "tpm"] },
  healthCertificateLifetimeSeconds: { type: "integer" },
  nonceTtlSeconds: { type: "integer" },
  denyBefore: { type: "integer" },
  requireEkCertificate: { type: "boolean" },
});

export const settingsPatch: Schema = {
  type: "object",
  additionalProperties: false,
  minProperties: 1,
  properties: {
    mode: { type: "string", enum: ["key", "tpm"] },
    healthCertificateLifetimeSeconds: { type: "integer", minimum: 60, maximum: 604800 },
    nonceTtlSeconds: { type: "integer", minimum: 5, maximum: 3600 },
    denyBefore: { type: "integer", minimum: 0, maximum: 8640000000000000 },
    requireEkCertificate: { type: "boolean" },
  },
};

export const auditEntry: Schema = out({
  seq: { type: "integer" },
  at: { type: "integer" },
  event: { type: "string" },
  hostId: { type: ["string", "null"] },
  detail: anyObject,
  prevHash: { type: "string" },
  hash: { type: "string" },
});

export const wrappedKeys: Schema = out({
  scheme: { type: "string" },
  enc: { type: "string" },
  ciphertext: { type: "string" },
});

export const releaseResponse: Schema = out({
  keyProtector: { type: "string" },
  protectorId: { type: "string" },
  oldKeyGeneration: { type: "integer" },
  newKeyGeneration: { type: "integer" },
  keys: wrappedKeys,
});

export const baseline: Schema = {
  type: "object",
  additionalProperties: false,
  required: ["format", "kind", "name", "bank", "pcrs"],
  properties: {
    format: { const: "bulwark-hgs-baseline/v1" },
    kind: { type: "string", enum: ["secureboot", "codeintegrity"] },
    name: text(256),
    bank: { const: "sha256" },
    pcrs: {
      type: "object",
      additionalProperties: false,
      minProperties: 1,
      patternProperties: { "^(4|7|8|9)$": { type: "string", pattern: "^[0-9a-fA-F]{64}$" } },
    },
    capturedAt: text(64),
    host: text(256),
    facts: anyObject,
  },
};

/** OpenAPI 3.1 document generated from the route table (the schemas are the routes' own). */
import { Type, type TSchema } from "@fastify/type-provider-typebox";
import type { RouteDef } from "./routes.js";

const propertiesOf = (s: TSchema | undefined) => (s && Type.IsObject(s) ? Object.entries(s.properties) : []);

export function openApiDocument(routes: readonly RouteDef[], version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const path = r.url.replace(/:([A-Za-z]+)/g, "{$1}");
    const params = propertiesOf(r.params).map(([name, schema]) => ({
      name,
      in: "path",
      required: true,
      schema,
    }));
    const query = propertiesOf(r.querystring).map(([name, schema]) => ({
      name,
      in: "query",
      required: false,
      schema,
    }));
    const responses: Record<string, unknown> = {};
    for (const [status, schema] of Object.entries(r.response)) {
      responses[status] = {
        description: status === "200" ? "Success" : "Error (code from the catalogue, see docs/errors.md)",
        content: { "application/json": { schema } },
      };
    }
    (paths[path] ??= {})[r.method.toLowerCase()] = {
      summary: r.summary,
      tags: [r.tag],
      operationId: `${r.method.toLowerCase()}${path.replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : ""))}`,
      ...(r.admin ? { security: [{ adminCredential: [] }] } : {}),
      ...(params.length || query.length ? { parameters: [...params, ...query] } : {}),
      ...(r.body
        ? {
            requestBody: {
              required: true,
              description: `At most ${r.bodyLimit} bytes.`,
              content: { "application/json": { schema: r.body } },
            },
          }
        : {}),
      "x-body-limit": r.bodyLimit,
      responses,
    };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Bulwark Host Guardian Service",
      version,
      description:
        "Attestation (host-key and TPM modes) issuing health certificates, and Key Protection releasing VM keys to healthy hosts. See docs/hgs.md.",
    },
    paths,
    components: {
      securitySchemes: {
        adminCredential: {
          type: "http",
          scheme: "bearer",
          description: "The admin credential written by `bulwark hgs init`.",
        },
      },
    },
  };
}

/**
 * The HGS's TLS parameters. TLS 1.2 is limited to forward-secret AEAD suites (ECDHE with
 * AES-GCM or ChaCha20-Poly1305, for an ECDSA or an RSA identity), as RFC 9325 §4.2 and the
 * Mozilla "intermediate" profile recommend. Node's default list ends in OpenSSL's "HIGH", which
 * adds CBC suites with SHA-1 MACs, CCM8 (64-bit tags), ARIA and DHE. TLS 1.3 keeps OpenSSL's
 * default suites (all AEAD). Older protocol versions are refused. The same list applies to an
 * identity the operator puts in place of the one made at init (ECDSA or RSA).
 */
import type { SecureContextOptions } from "node:tls";

/** TLS 1.2 suites (OpenSSL names), strongest first. */
export const TLS12_CIPHERS = [
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
] as const;

/** TLS 1.3 suites: OpenSSL's defaults, named so that `ciphers` does not drop them. */
export const TLS13_CIPHERS = [
  "TLS_AES_256_GCM_SHA384",
  "TLS_CHACHA20_POLY1305_SHA256",
  "TLS_AES_128_GCM_SHA256",
] as const;

export function httpsOptions(identity: { readonly tlsKeyPem: string; readonly tlsCertPem: string }) {
  return {
    key: identity.tlsKeyPem,
    cert: identity.tlsCertPem,
    minVersion: "TLSv1.2",
    ciphers: [...TLS13_CIPHERS, ...TLS12_CIPHERS].join(":"),
    honorCipherOrder: true,
  } satisfies SecureContextOptions & { honorCipherOrder: boolean };
}

/**
 * Certificate chain building over a pool (e.g. a PKCS #7 certificates bag), RFC 5280 section 6
 * reduced to what UEFI firmware checks: issuer name bytes equal, the issuer's signature verifies,
 * and an issuing certificate that has basicConstraints says cA=TRUE (OpenSSL's check for
 * v3 CAs, which edk2's Pkcs7Verify relies on). Validity periods are NOT checked (edk2 ignores
 * them: firmware has no trusted time), nor name constraints, policies or key usages.
 */
import { bytesEqual, isIssuedBy, type Certificate } from "./x509.js";

/** May `issuer` issue certificates? v1/v2 certificates and v3 ones with cA=TRUE may. */
export function canIssue(issuer: Certificate): boolean {
  return issuer.version < 3 || issuer.ca === true;
}

/**
 * The chain from `leaf` upwards through `pool`, leaf first, stopping at a self-issued
 * certificate, when no issuer is found, or after `maxLength` certificates. Loops are cut.
 */
export function buildChain(leaf: Certificate, pool: readonly Certificate[], maxLength = 10): Certificate[] {
  const chain = [leaf];
  let cur = leaf;
  while (chain.length < maxLength) {
    if (isIssuedBy(cur, cur)) break; // self-signed root
    const next = pool.find((c) => !chain.includes(c) && canIssue(c) && isIssuedBy(cur, c));
    if (!next) break;
    chain.push(next);
    cur = next;
  }
  return chain;
}

export interface AnchorMatch {
  /** Index in the chain of the certificate that is the anchor, or that the anchor issued. */
  readonly index: number;
  /** "member": the anchor is that chain certificate; "issuer": the anchor signed it. */
  readonly how: "member" | "issuer";
}

/**
 * Does `anchor` (a trusted certificate, e.g. from db, KEK or PK) authorise `chain`? Like OpenSSL
 * with X509_V_FLAG_PARTIAL_CHAIN as edk2's Pkcs7Verify uses it: the anchor is any certificate in
 * the chain (the signer included), or the verified issuer of one of them.
 */
export function anchorMatch(chain: readonly Certificate[], anchor: Certificate): AnchorMatch | undefined {
  // Membership first: the anchor itself in the bag is the more specific fact.
  const member = chain.findIndex((c) => bytesEqual(c.raw, anchor.raw));
  if (member >= 0) return { index: member, how: "member" };
  if (!canIssue(anchor)) return undefined;
  const issued = chain.findIndex((c) => isIssuedBy(c, anchor));
  if (issued >= 0) return { index: issued, how: "issuer" };
  return undefined;
}

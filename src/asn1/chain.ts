/**
 * Certificate chains as UEFI firmware judges them: edk2's Pkcs7Verify hands the chain to OpenSSL's
 * X509_verify_cert with X509_V_FLAG_PARTIAL_CHAIN and X509_V_FLAG_NO_CHECK_TIME, so the rules are
 * RFC 5280 section 6 as OpenSSL applies them (check_chain_extensions), minus time:
 *
 *   - a certificate issues another when the issuer name bytes are equal and its key verifies the
 *     signature; a v3 issuer needs basicConstraints cA=TRUE (v1/v2 issuers are taken as CAs);
 *   - a certificate that repeats an extension is refused (RFC 5280 4.2: "MUST NOT include more
 *     than one instance of a particular extension"; OpenSSL marks it invalid);
 *   - a certificate with a critical extension we do not process is refused (RFC 5280 4.2: "MUST
 *     reject the certificate if it encounters a critical extension it does not recognize");
 *     "recognise" means OpenSSL's X509_supported_extension list, the set edk2 inherits;
 *   - pathLenConstraint: a CA may have at most pathLen non-self-issued intermediates below it
 *     (RFC 5280 4.2.1.9), counted as OpenSSL counts them, the trust anchor included;
 *   - the anchor may be any certificate of the path, or the verified issuer of one (partial chain).
 *
 * NOT checked: validity periods (firmware has no trusted time; edk2 sets NO_CHECK_TIME), name
 * constraints, policies and key usages beyond cA.
 */
import { bytesEqual } from "../core/bytes.js";
import { OID } from "./oid.js";
import { isIssuedBy, type Certificate } from "./x509.js";

/** Extensions OpenSSL processes (X509_supported_extension), so a critical one does not refuse. */
const PROCESSED_EXTENSIONS: ReadonlySet<string> = new Set([
  "2.16.840.1.113730.1.1", // netscape-cert-type
  OID.keyUsage,
  OID.subjectAltName,
  OID.basicConstraints,
  "2.5.29.32", // certificatePolicies
  OID.extKeyUsage,
  "1.3.6.1.5.5.7.1.7", // sbgp-ipAddrBlock (RFC 3779)
  "1.3.6.1.5.5.7.1.8", // sbgp-autonomousSysNum (RFC 3779)
  "2.5.29.36", // policyConstraints
  "1.3.6.1.5.5.7.1.14", // proxyCertInfo
  "2.5.29.30", // nameConstraints
  "2.5.29.33", // policyMappings
  "2.5.29.54", // inhibitAnyPolicy
]);

/** Why RFC 5280 refuses `cert` in any chain, or undefined when it may take part. */
export function certificateProblem(cert: Certificate): string | undefined {
  const seen = new Set<string>();
  for (const e of cert.extensions) {
    if (seen.has(e.oid)) return `extension ${e.oid} appears twice (RFC 5280 4.2)`;
    seen.add(e.oid);
  }
  const unknown = cert.extensions.find((e) => e.critical && !PROCESSED_EXTENSIONS.has(e.oid));
  if (unknown) return `unrecognised critical extension ${unknown.oid} (RFC 5280 4.2)`;
  return undefined;
}

/** May `issuer` issue certificates? v1/v2 certificates and v3 ones with cA=TRUE may. */
export function canIssue(issuer: Certificate): boolean {
  return issuer.version < 3 || issuer.ca === true;
}

const selfIssued = (c: Certificate): boolean => bytesEqual(c.issuer.raw, c.subject.raw);

/**
 * Why the certification path `path` (leaf first, anchor last) breaks a rule of the module
 * comment other than signatures (which building checked), or undefined when it holds.
 */
export function pathProblem(path: readonly Certificate[]): string | undefined {
  let below = 0; // non-self-issued intermediates between the leaf and path[i]
  for (let i = 0; i < path.length; i++) {
    const c = path[i] as Certificate;
    const why = certificateProblem(c);
    if (why) return `${c.subject.text}: ${why}`;
    if (i > 1 && c.pathLength !== undefined && below > c.pathLength)
      return `${c.subject.text}: pathLenConstraint ${c.pathLength} allows fewer than the ${below} CA certificates below it (RFC 5280 4.2.1.9)`;
    if (i > 0 && !selfIssued(c)) below++;
  }
  return undefined;
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
  /** Why the path to the anchor is not valid (see the module comment); undefined when it is. */
  readonly problem: string | undefined;
}

/**
 * Does `anchor` (a trusted certificate, e.g. from db, KEK or PK) authorise `chain`? Like OpenSSL
 * with X509_V_FLAG_PARTIAL_CHAIN as edk2's Pkcs7Verify uses it: the anchor is any certificate in
 * the chain (the signer included), or the verified issuer of one of them. The match says whether
 * the path from the leaf to the anchor keeps the RFC 5280 rules ({@link pathProblem}); trust
 * needs `problem === undefined` (see {@link trusts}), while revocation (dbx) matches regardless.
 */
export function anchorMatch(chain: readonly Certificate[], anchor: Certificate): AnchorMatch | undefined {
  // Membership first: the anchor itself in the bag is the more specific fact.
  const member = chain.findIndex((c) => bytesEqual(c.raw, anchor.raw));
  if (member >= 0) return { index: member, how: "member", problem: pathProblem(chain.slice(0, member + 1)) };
  if (!canIssue(anchor)) return undefined;
  const issued = chain.findIndex((c) => isIssuedBy(c, anchor));
  if (issued >= 0)
    return { index: issued, how: "issuer", problem: pathProblem([...chain.slice(0, issued + 1), anchor]) };
  return undefined;
}

/** A match that grants trust: the anchor authorises the chain over a valid path. */
export function trusts(m: AnchorMatch): boolean {
  return m.problem === undefined;
}

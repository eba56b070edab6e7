/**
 * The Authenticode-specific structures, declared once for @peculiar/asn1-schema (decode and
 * encode follow from the declaration). Microsoft "Windows Authenticode Portable Executable
 * Signature Format" 1.0, section "Authenticode-Specific Structures":
 *
 *   SpcIndirectDataContent ::= SEQUENCE { data SpcAttributeTypeAndOptionalValue,
 *                                         messageDigest DigestInfo }
 *   SpcAttributeTypeAndOptionalValue ::= SEQUENCE { type OBJECT IDENTIFIER,
 *                                                   value [0] EXPLICIT ANY OPTIONAL }
 *       -- the document writes `value ANY OPTIONAL`; signtool and sbsign put SpcPeImageData
 *       -- there untagged, which is what ANY OPTIONAL means: decoded as ANY below.
 *   DigestInfo ::= SEQUENCE { digestAlgorithm AlgorithmIdentifier, digest OCTET STRING }
 *   SpcPeImageData ::= SEQUENCE { flags SpcPeImageFlags DEFAULT { includeResources },
 *                                 file [0] EXPLICIT SpcLink OPTIONAL }
 *   SpcLink ::= CHOICE { url [0] IMPLICIT IA5String, moniker [1] IMPLICIT SpcSerializedObject,
 *                        file [2] EXPLICIT SpcString }
 *   SpcString ::= CHOICE { unicode [0] IMPLICIT BMPString, ascii [1] IMPLICIT IA5String }
 *
 * The decorators are applied as plain functions: the project compiles without
 * `experimentalDecorators`, and these are the functions the decorator syntax would call.
 */
import { AsnProp, AsnPropTypes, AsnType, AsnTypeTypes, BitString, OctetString } from "@peculiar/asn1-schema";
import { AlgorithmIdentifier } from "@peculiar/asn1-x509";

export class SpcString {
  unicode?: string;
  ascii?: string;
  constructor(params: Partial<SpcString> = {}) {
    Object.assign(this, params);
  }
}
AsnType({ type: AsnTypeTypes.Choice })(SpcString);
AsnProp({ type: AsnPropTypes.BmpString, context: 0, implicit: true })(SpcString.prototype, "unicode");
AsnProp({ type: AsnPropTypes.IA5String, context: 1, implicit: true })(SpcString.prototype, "ascii");

export class SpcLink {
  url?: string;
  file?: SpcString;
  constructor(params: Partial<SpcLink> = {}) {
    Object.assign(this, params);
  }
}
AsnType({ type: AsnTypeTypes.Choice })(SpcLink);
AsnProp({ type: AsnPropTypes.IA5String, context: 0, implicit: true })(SpcLink.prototype, "url");
AsnProp({ type: SpcString, context: 2 })(SpcLink.prototype, "file");

export class SpcPeImageData {
  flags = new BitString();
  file?: SpcLink;
  constructor(params: Partial<SpcPeImageData> = {}) {
    Object.assign(this, params);
  }
}
AsnProp({ type: BitString })(SpcPeImageData.prototype, "flags");
AsnProp({ type: SpcLink, context: 0, optional: true })(SpcPeImageData.prototype, "file");

export class SpcAttributeTypeAndOptionalValue {
  type = "";
  value?: ArrayBuffer;
  constructor(params: Partial<SpcAttributeTypeAndOptionalValue> = {}) {
    Object.assign(this, params);
  }
}
AsnProp({ type: AsnPropTypes.ObjectIdentifier })(SpcAttributeTypeAndOptionalValue.prototype, "type");
AsnProp({ type: AsnPropTypes.Any, optional: true })(SpcAttributeTypeAndOptionalValue.prototype, "value");

export class DigestInfo {
  digestAlgorithm = new AlgorithmIdentifier();
  digest = new OctetString();
  constructor(params: Partial<DigestInfo> = {}) {
    Object.assign(this, params);
  }
}
AsnProp({ type: AlgorithmIdentifier })(DigestInfo.prototype, "digestAlgorithm");
AsnProp({ type: OctetString })(DigestInfo.prototype, "digest");

export class SpcIndirectDataContent {
  data = new SpcAttributeTypeAndOptionalValue();
  messageDigest = new DigestInfo();
  constructor(params: Partial<SpcIndirectDataContent> = {}) {
    Object.assign(this, params);
  }
}
AsnProp({ type: SpcAttributeTypeAndOptionalValue })(SpcIndirectDataContent.prototype, "data");
AsnProp({ type: DigestInfo })(SpcIndirectDataContent.prototype, "messageDigest");

/**
 * TPM-mode attestation policies, named like Hyper-V's (`Get-HgsAttestationPolicy`). Each is
 * enabled or disabled; a locked policy cannot be disabled. Host-key mode evaluates none of them
 * (as in Hyper-V, host-key attestation proves identity only, not boot health). Policy names keep
 * Hyper-V's spelling; the findings their checks make follow the FINDING_ID grammar.
 */
import type { SubStatus } from "./verdict.js";

export interface PolicyDefinition {
  /** The policy's name, as Hyper-V spells it (what admins enable and disable). */
  readonly id: string;
  /** The id of the finding its check makes (FINDING_ID grammar; a status in verdict.ts). */
  readonly findingId: string;
  readonly subStatus: SubStatus;
  readonly summary: string;
  readonly enabledByDefault: boolean;
  readonly locked: boolean;
  /** PCRs the policy needs quoted (sha256 bank). */
  readonly pcrs: readonly number[];
}

export const POLICIES: readonly PolicyDefinition[] = [
  {
    id: "Hgs_SecureBootEnabled",
    findingId: "hgs.secure-boot-enabled",
    subStatus: "SecureBoot",
    summary: "UEFI Secure Boot is enabled (SecureBoot variable = 1, measured in PCR 7).",
    enabledByDefault: true,
    locked: true,
    pcrs: [7],
  },
  {
    id: "Hgs_UefiDebugDisabled",
    findingId: "hgs.uefi-debug-disabled",
    subStatus: "FirmwareDebug",
    summary: "The firmware is not in debug mode (no EV_EFI_ACTION 'UEFI Debug Mode' in PCR 7).",
    enabledByDefault: true,
    locked: true,
    pcrs: [7],
  },
  {
    id: "Hgs_SecureBootSettings",
    findingId: "hgs.secure-boot-settings",
    subStatus: "SecureBootSettings",
    summary:
      "PCR 7 (Secure Boot state, PK, KEK, db, dbx and the authorities used) matches a registered baseline.",
    enabledByDefault: true,
    locked: false,
    pcrs: [7],
  },
  {
    id: "Hgs_CodeIntegrityPolicy",
    findingId: "hgs.code-integrity-policy",
    subStatus: "CodeIntegrityPolicy",
    summary: "The boot chain, kernel and command line (PCRs 4, 8, 9) match a registered baseline.",
    enabledByDefault: true,
    locked: false,
    pcrs: [4, 8, 9],
  },
  {
    id: "Hgs_IommuEnabled",
    findingId: "hgs.iommu-enabled",
    subStatus: "Iommu",
    summary:
      "The kernel command line turns the IOMMU on (intel_iommu=on, amd_iommu=on or iommu=pt|force|on).",
    enabledByDefault: true,
    locked: false,
    pcrs: [8, 9],
  },
  {
    id: "Hgs_FullBoot",
    findingId: "hgs.full-boot",
    subStatus: "FullBoot",
    summary:
      "The host booted fully, not resumed from hibernation or S3 (TPM resetCount unchanged since boot, restartCount 0).",
    enabledByDefault: true,
    locked: true,
    pcrs: [],
  },
];

export function policyById(id: string): PolicyDefinition | undefined {
  return POLICIES.find((p) => p.id === id);
}

/**
 * What every VM operation works with: the VM store, the host's guardians, where the VM's keys
 * come from, and where progress goes. The key source is a port: host/vm asks `unlock` for a VM's
 * secrets and never knows whether the host's own guardians or a Host Guardian Service released
 * them. The one composition point (host/index.ts) decides.
 */
import type { KeyProtector, ProtectorMemo } from "../../protector/key-protector.js";
import type { GuardianStore } from "../guardians.js";
import type { VmPaths, VmStore } from "./store.js";

/** The VM's secrets by name (VM_SECRET): secret bytes, zeroized by whoever asked for them. */
export type VmSecrets = Map<string, Uint8Array>;

/** One copy of a key protector as read from disk: its bytes and, when they decode, the model. */
export interface KeyProtectorCopy {
  readonly bytes: Uint8Array;
  readonly model: KeyProtector | undefined;
}

/** A VM's key files, read and decoded once per operation and passed to whoever needs them. */
export interface VmKeyFiles {
  readonly current: KeyProtectorCopy;
  readonly lastKnownGood: KeyProtectorCopy | undefined;
  /** The sealed VM-secrets blob (vm-secrets.bin), when present. */
  readonly secrets: Uint8Array | undefined;
  /**
   * What this operation already verified about these copies (guardian certificates, the owner's
   * signature; keyed by content), so the settings check and the unwrap of one start verify each
   * once. Lives as long as this value: nothing is remembered from one operation to the next.
   */
  readonly checked: ProtectorMemo;
}

/** A request for one VM's secrets. */
export interface UnlockRequest {
  readonly name: string;
  readonly paths: VmPaths;
  readonly files: VmKeyFiles;
  readonly progress: (message: string) => void;
}

/** The key source: the VM's opened secrets (the caller zeroizes them), or an error saying why not. */
export type KeyUnlock = (vm: UnlockRequest) => Promise<VmSecrets>;

export interface VmContext {
  readonly store: VmStore;
  readonly guardians: GuardianStore;
  readonly unlock: KeyUnlock;
  readonly progress?: (message: string) => void;
}

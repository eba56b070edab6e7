/**
 * The one composition point of the host: a VM context over a state directory, with its key
 * source wired as Hyper-V wires it — the host's own guardians first (local mode, or a VM this
 * host guards itself); when none of them is in the key protector, the Host Guardian Service
 * when one is configured; when HGS is not a guardian of the VM either, the local refusal stands.
 * host/vm only sees the KeyUnlock port; this file is the only one that knows both halves.
 */
import { isBulwarkError } from "../core/errors.js";
import { unlockVmViaHgs } from "./guarded/unlock.js";
import { GuardianStore } from "./guardians.js";
import type { KeyUnlock, VmContext } from "./vm/context.js";
import { localGuardianUnlock } from "./vm/keys.js";
import { VmStore } from "./vm/store.js";

export function hostContext(stateDir?: string, progress?: (message: string) => void): VmContext {
  const store = new VmStore(stateDir);
  const guardians = new GuardianStore(store.stateDir);
  const local = localGuardianUnlock(guardians);
  const unlock: KeyUnlock = async (vm) => {
    try {
      return await local(vm);
    } catch (e) {
      if (!isBulwarkError(e) || e.code !== "PROTECTOR_ERR_NOT_AUTHORIZED") throw e;
      const released = await unlockVmViaHgs(store.stateDir, vm);
      if (!released) throw e;
      return released;
    }
  };
  return { store, guardians, unlock, ...(progress ? { progress } : {}) };
}

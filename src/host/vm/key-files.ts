/**
 * A VM's key files — its key protector, the protector's last known good copy and the sealed VM
 * secrets — read once per operation, each protector copy decoded once. A start checks the owner's
 * signed settings against these bytes and hands the same bytes to the key source, so nothing is
 * read or decoded twice, and nothing can change between the check and the unwrap.
 */
import { bytesEqual } from "../../core/bytes.js";
import { parseKeyProtector, ProtectorMemo } from "../../protector/key-protector.js";
import { readFileIfExists } from "../file-errors.js";
import type { KeyProtectorCopy, VmKeyFiles } from "./context.js";
import { vmError } from "./errors.js";
import type { VmPaths } from "./store.js";

/** One copy as read: its bytes and, when they decode, the model (the unwrap says why not otherwise). */
export function keyProtectorCopy(bytes: Uint8Array): KeyProtectorCopy {
  let model;
  try {
    model = parseKeyProtector(bytes);
  } catch {
    model = undefined;
  }
  return { bytes, model };
}

/** The VM's key files, or undefined when it has no key protector. */
export async function readVmKeyFilesIfAny(paths: VmPaths): Promise<VmKeyFiles | undefined> {
  const current = await readFileIfExists(paths.keyProtector);
  if (!current) return undefined;
  const lkg = await readFileIfExists(paths.keyProtectorLastKnownGood);
  const copy = keyProtectorCopy(current);
  return {
    current: copy,
    // After every successful unlock the last known good copy is the current one byte for byte:
    // it shares the current copy's decoding then.
    lastKnownGood: !lkg
      ? undefined
      : bytesEqual(lkg, current)
        ? { bytes: lkg, model: copy.model }
        : keyProtectorCopy(lkg),
    secrets: await readFileIfExists(paths.vmSecrets),
    checked: new ProtectorMemo(),
  };
}

/** The VM's key files; VM_ERR_KEY_PROTECTOR_REQUIRED when it has no key protector. */
export async function readVmKeyFiles(paths: VmPaths): Promise<VmKeyFiles> {
  const files = await readVmKeyFilesIfAny(paths);
  if (!files) {
    throw vmError(
      "VM_ERR_KEY_PROTECTOR_REQUIRED",
      "the VM has no key protector (bulwark vm key-protector set VM --new-local)",
    );
  }
  return files;
}

/** The copies (current first), each distinct content once. */
export function distinctCopies(files: VmKeyFiles): KeyProtectorCopy[] {
  const { current, lastKnownGood: lkg } = files;
  return lkg && !bytesEqual(lkg.bytes, current.bytes) ? [current, lkg] : [current];
}

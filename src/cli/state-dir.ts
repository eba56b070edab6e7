/**
 * `--state-dir DIR` of every verb that keeps files on this host: the directory (or
 * $BULWARK_STATE_DIR, or /var/lib/bulwark) checked once, before the verb touches it
 * (HOST_ERR_STATE_DIR, see host/state-dir.ts).
 */
import { checkStateDir } from "../host/state-dir.js";
import { defaultStateDir } from "../host/vm/store.js";

export function stateDirOption(value: string | undefined): string {
  return checkStateDir(value ?? defaultStateDir());
}

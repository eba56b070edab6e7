/** Input checks shared by the service's modules. */
import { HgsError } from "../attest/errors.js";

/** Host and baseline names: 1..256 characters, no control characters (they appear in logs and PEM text). */
export function checkName(name: string): void {
  const control = [...name].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f);
  if (typeof name !== "string" || name.length === 0 || name.length > 256 || control) {
    throw new HgsError("HGS_ERR_INVALID", "names are 1..256 characters without control characters");
  }
}

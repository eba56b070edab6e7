/**
 * A child that must not outlive this process (a probe's QEMU, swtpm_setup, a tool Bulwark waits
 * for) runs as
 *
 *     setpriv --pdeathsig SIGKILL -- /bin/sh -c 'parent check; exec "$@"' PARENT PROGRAM ARGS…
 *
 * Node cannot call prctl(PR_SET_PDEATHSIG) itself, so setpriv (util-linux) sets it and execs; the
 * kernel then SIGKILLs the child when this process dies, however it dies (kill -9 included).
 * The shell closes the one gap setpriv leaves: if this process died between the fork and the
 * prctl, the signal never comes — so the child checks that its parent is still this process
 * after the prctl, and exits if it was already orphaned. Both are exec'd in place: the pid Node
 * sees is the program's pid. Fixed system paths, never a PATH lookup; the script and its
 * arguments hold no secret (secrets go on fd 3).
 *
 * Not covered: a child that forks on purpose (QEMU -daemonize: the fork's child has no parent-death
 * signal and is meant to outlive us) and children of the child.
 */
import { accessSync, constants } from "node:fs";
import { hostError } from "./errors.js";

const SETPRIV = ["/usr/bin/setpriv", "/bin/setpriv"];
const SH = "/bin/sh";

/**
 * Runs "$@" only if the parent is still the pid given as $0 (an orphan exits 137, as if killed).
 * `unset PWD`: the shell exports the directory it starts in, and a child gets only the
 * environment tools.ts chooses (childEnvironment).
 */
const PARENT_CHECK = 'if [ "$PPID" != "$0" ]; then exit 137; fi; unset PWD; exec "$@"';

function executable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The command line that runs `exe args` tied to this process's life. Throws HOST_ERR_TOOL_MISSING
 * without setpriv: a child that could outlive a killed CLI is not started silently.
 */
export function tiedToParent(exe: string, args: readonly string[]): { command: string; argv: string[] } {
  const setpriv = SETPRIV.find(executable);
  if (!setpriv || !executable(SH)) {
    throw hostError(
      "HOST_ERR_TOOL_MISSING",
      "setpriv not found in /usr/bin: install the Debian package 'util-linux' (children must die with bulwark)",
      { program: "setpriv", package: "util-linux" },
    );
  }
  return {
    command: setpriv,
    argv: ["--pdeathsig", "SIGKILL", "--", SH, "-c", PARENT_CHECK, String(process.pid), exe, ...args],
  };
}

/**
 * Which QMP commands an operator may send to a VM (`bulwark vm qmp`). For a shielded VM only an
 * allow-list passes: nothing that reads guest memory, captures the screen, writes plaintext
 * state, adds devices or changes where the VM's data goes. Bulwark's own save/migration code
 * talks to QEMU directly and is not subject to the gate.
 */
import type { VmConfig } from "./config.js";
import { vmError } from "./errors.js";

/** Commands that read guest memory or write plaintext state, refused unless the policy is None. */
export const memoryReadingCommands: readonly string[] = [
  "dump-guest-memory",
  "memsave",
  "pmemsave",
  "human-monitor-command",
  "screendump",
  "migrate",
  "migrate-incoming",
  "x-colo-lost-heartbeat",
  "dump-skeys",
  "query-dump",
];

/** What a shielded VM accepts from an operator. */
export const shieldedAllowList: readonly string[] = [
  "qmp_capabilities",
  "query-status",
  "query-name",
  "query-uuid",
  "query-version",
  "query-commands",
  "query-kvm",
  "query-cpus-fast",
  "query-migrate",
  "query-tpm",
  "system_powerdown",
  "system_reset",
  "stop",
  "cont",
  "quit",
];

export function checkQmpCommand(c: VmConfig, command: string): void {
  if (c.security.policy === "Shielded") {
    if (!shieldedAllowList.includes(command)) {
      throw vmError(
        "VM_ERR_QMP_REFUSED",
        `QMP command '${command}' is refused for shielded VM '${c.name}'` +
          (memoryReadingCommands.includes(command)
            ? " (it reads guest memory or writes plaintext state)"
            : ""),
        { command },
      );
    }
    return;
  }
  if (c.security.policy === "EncryptionSupported" || c.security.encryptStateAndMigration) {
    if (memoryReadingCommands.includes(command)) {
      throw vmError(
        "VM_ERR_QMP_REFUSED",
        `QMP command '${command}' is refused: VM '${c.name}' encrypts its state and migration traffic`,
        { command },
      );
    }
  }
}

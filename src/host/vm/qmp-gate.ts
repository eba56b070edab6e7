/**
 * Which QMP commands an operator may send to a VM (`bulwark vm qmp`). Every command QEMU offers
 * is classified below with the reason for its class; the gate is an allow-list by class:
 * - policy None: the operator owns the VM; every command passes.
 * - encryption on (EncryptionSupported, or "encrypt state and migration"): only commands that
 *   cannot write guest memory or device state anywhere, copy or export the VM's disks, change its
 *   hardware, or reach host resources — status, power, and host-side metadata queries.
 * - Shielded: stricter still, status and power only.
 * A command not in the table (a newer QEMU's) is refused under both policies until it is
 * classified here (test/integration/vm-shield.test.ts checks the running QEMU's own list).
 * Bulwark's own save/restore and migration talk to QEMU directly and are not subject to the gate;
 * the gate decides from the settings verified when the VM started (lifecycle.ts), not from
 * config.json.
 */
import type { SecurityPolicy } from "./config.js";
import { vmError } from "./errors.js";

/** Classes of QMP commands and why they are or are not safe for a VM that encrypts its state. */
export const qmpClasses = {
  status: "reports the VM's run state or identity; reads no guest memory",
  power: "changes the run state (pause, resume, reset, power off) without reading or writing guest memory",
  metadata: "reports host-side configuration (devices, disks, queues, sizes), never guest memory content",
  memory: "reads guest memory or what the guest drew or wrote, and hands it to the caller or a host file",
  state: "writes or loads VM state (RAM and devices) outside Bulwark's encrypted save and migration stream",
  disk: "copies, exports, snapshots or re-points the VM's disks (guest data) outside Bulwark's control",
  devices: "changes the VM's hardware or the host resources it reaches (devices, objects, chardevs, fds)",
  monitor: "the human monitor runs any HMP command (savevm, x/xp memory dumps): a way around this gate",
  input: "injects keystrokes, pointer events or interrupts into the guest",
  debug: "debugging, replay or unstable (x-) interfaces that expose internals or guest state",
} as const;
export type QmpClass = keyof typeof qmpClasses;

const shieldedClasses: ReadonlySet<QmpClass> = new Set(["status", "power"]);
const encryptedClasses: ReadonlySet<QmpClass> = new Set(["status", "power", "metadata"]);

const classes: Readonly<Record<QmpClass, readonly string[]>> = {
  status: [
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
  ],
  power: ["system_powerdown", "system_reset", "stop", "cont", "quit"],
  metadata: [
    "system_wakeup",
    "query-acpi-ospm-status",
    "query-balloon",
    "query-block",
    "query-block-exports",
    "query-block-jobs",
    "query-blockstats",
    "query-chardev",
    "query-chardev-backends",
    "query-command-line-options",
    "query-cpu-definitions",
    "query-cpu-model-expansion",
    "query-current-machine",
    "query-display-options",
    "query-dump-guest-memory-capability",
    "query-fdsets",
    "query-hotpluggable-cpus",
    "query-iothreads",
    "query-jobs",
    "query-machines",
    "query-memdev",
    "query-memory-devices",
    "query-memory-size-summary",
    "query-mice",
    "query-migrate-capabilities",
    "query-migrate-parameters",
    "query-named-block-nodes",
    "query-pci",
    "query-pr-managers",
    "query-qmp-schema",
    "query-rocker",
    "query-rocker-of-dpa-flows",
    "query-rocker-of-dpa-groups",
    "query-rocker-ports",
    "query-rx-filter",
    "query-sev",
    "query-sev-capabilities",
    "query-sgx",
    "query-sgx-capabilities",
    "query-spice",
    "query-stats-schemas",
    "query-target",
    "query-tpm-models",
    "query-tpm-types",
    "query-vm-generation-id",
    "query-vnc",
    "query-vnc-servers",
    "query-yank",
    "qom-list-types",
    "device-list-properties",
    "qom-list-properties",
  ],
  memory: [
    "dump-guest-memory",
    "query-dump",
    "memsave",
    "pmemsave",
    "screendump",
    "ringbuf-read",
    "dumpdtb",
    "dump-skeys",
    "query-sev-attestation-report",
    "query-sev-launch-measure",
    // qom-get reads any object property (a secret object's data, a backend's contents' paths).
    "qom-get",
    "qom-list",
    // Statistics providers read guest-derived counters; kept out until one is shown harmless.
    "query-stats",
  ],
  state: [
    "snapshot-save",
    "snapshot-load",
    "snapshot-delete",
    "migrate",
    "migrate-incoming",
    "migrate-continue",
    "migrate-pause",
    "migrate-recover",
    "migrate-start-postcopy",
    "migrate_cancel",
    "migrate-set-capabilities",
    "migrate-set-parameters",
    "client_migrate_info",
    "xen-save-devices-state",
    "xen-load-devices-state",
    "xen-set-global-dirty-log",
    "xen-colo-do-checkpoint",
    "xen-set-replication",
    "x-colo-lost-heartbeat",
    "query-colo-status",
    "query-xen-replication-status",
    "blockdev-snapshot-internal-sync",
    "blockdev-snapshot-delete-internal-sync",
    "announce-self",
  ],
  disk: [
    "block-commit",
    "block-stream",
    "blockdev-backup",
    "drive-backup",
    "drive-mirror",
    "blockdev-mirror",
    "block-export-add",
    "block-export-del",
    "nbd-server-start",
    "nbd-server-add",
    "nbd-server-remove",
    "nbd-server-stop",
    "blockdev-add",
    "blockdev-create",
    "blockdev-del",
    "blockdev-reopen",
    "blockdev-snapshot",
    "blockdev-snapshot-sync",
    "change-backing-file",
    "blockdev-change-medium",
    "blockdev-insert-medium",
    "blockdev-remove-medium",
    "blockdev-open-tray",
    "blockdev-close-tray",
    "eject",
    "block_resize",
    "block_set_io_throttle",
    "block-set-write-threshold",
    "block-latency-histogram-set",
    "block-dirty-bitmap-add",
    "block-dirty-bitmap-clear",
    "block-dirty-bitmap-disable",
    "block-dirty-bitmap-enable",
    "block-dirty-bitmap-merge",
    "block-dirty-bitmap-remove",
    "block-job-cancel",
    "block-job-complete",
    "block-job-dismiss",
    "block-job-finalize",
    "block-job-pause",
    "block-job-resume",
    "block-job-set-speed",
    "job-cancel",
    "job-complete",
    "job-dismiss",
    "job-finalize",
    "job-pause",
    "job-resume",
    "transaction",
    "x-blockdev-amend",
    "x-blockdev-change",
    "x-blockdev-set-iothread",
    "x-debug-block-dirty-bitmap-sha256",
    "x-debug-query-block-graph",
  ],
  devices: [
    "device_add",
    "device_del",
    "object-add",
    "object-del",
    "chardev-add",
    "chardev-change",
    "chardev-remove",
    "chardev-send-break",
    "ringbuf-write",
    "netdev_add",
    "netdev_del",
    "set_link",
    "getfd",
    "closefd",
    "add-fd",
    "remove-fd",
    "add_client",
    "qom-set",
    "balloon",
    "set-numa-node",
    "x-exit-preconfig",
    "set-action",
    "watchdog-set-action",
    "set_password",
    "expire_password",
    "change-vnc-password",
    "display-reload",
    "display-update",
    "yank",
    "set-vcpu-dirty-limit",
    "cancel-vcpu-dirty-limit",
    "sev-inject-launch-secret",
    "rtc-reset-reinjection",
    "trace-event-set-state",
  ],
  monitor: ["human-monitor-command"],
  input: ["send-key", "input-send-event", "inject-nmi"],
  debug: [
    "trace-event-get-state",
    "calc-dirty-rate",
    "query-dirty-rate",
    "query-vcpu-dirty-limit",
    "query-replay",
    "replay-break",
    "replay-delete-break",
    "replay-seek",
    "x-query-irq",
    "x-query-jit",
    "x-query-numa",
    "x-query-opcount",
    "x-query-profile",
    "x-query-ramblock",
    "x-query-rdma",
    "x-query-roms",
    "x-query-usb",
    "x-query-virtio",
    "x-query-virtio-queue-element",
    "x-query-virtio-queue-status",
    "x-query-virtio-status",
    "x-query-virtio-vhost-queue-status",
  ],
};

/** Every classified command → its class. */
export const qmpCommandClass: ReadonlyMap<string, QmpClass> = new Map(
  (Object.entries(classes) as [QmpClass, readonly string[]][]).flatMap(([k, names]) =>
    names.map((n) => [n, k] as const),
  ),
);

/** The class of a command, or undefined for one this Bulwark has not classified (refused when it matters). */
export function classifyQmpCommand(command: string): QmpClass | undefined {
  return qmpCommandClass.get(command);
}

/** What a shielded VM accepts from an operator. */
export const shieldedAllowList: readonly string[] = [...qmpCommandClass]
  .filter(([, k]) => shieldedClasses.has(k))
  .map(([n]) => n);

/** What a VM that encrypts its state accepts from an operator. */
export const encryptedAllowList: readonly string[] = [...qmpCommandClass]
  .filter(([, k]) => encryptedClasses.has(k))
  .map(([n]) => n);

/** Commands that read guest memory or write plaintext state (or run any command that does). */
export const memoryReadingCommands: readonly string[] = [...qmpCommandClass]
  .filter(([, k]) => k === "memory" || k === "state" || k === "monitor")
  .map(([n]) => n);

/** The settings the gate decides from: those verified when the VM started (see lifecycle.ts). */
export interface QmpGateSettings {
  readonly name: string;
  readonly security: { readonly policy: SecurityPolicy; readonly encryptStateAndMigration: boolean };
}

export function checkQmpCommand(c: QmpGateSettings, command: string): void {
  const shielded = c.security.policy === "Shielded";
  const encrypted = c.security.policy === "EncryptionSupported" || c.security.encryptStateAndMigration;
  if (!shielded && !encrypted) return;
  const k = classifyQmpCommand(command);
  const allowed = shielded ? shieldedClasses : encryptedClasses;
  if (k !== undefined && allowed.has(k)) return;
  const why = k === undefined ? "this Bulwark has not classified it" : qmpClasses[k];
  throw vmError(
    "VM_ERR_QMP_REFUSED",
    `QMP command '${command}' is refused for ${shielded ? "shielded " : ""}VM '${c.name}'` +
      `${shielded ? "" : " (it encrypts its state and migration traffic)"}: ${why}`,
    { command, class: k ?? "unclassified", policy: c.security.policy },
  );
}

/**
 * The verb table. Each entry loads its module lazily; add one line per verb.
 * A module exports `run(argv) → exit status` and prints its own `--help`.
 */
export interface CommandModule {
  run(argv: string[]): Promise<number>;
}

export interface CommandEntry {
  readonly name: string;
  readonly summary: string;
  load(): Promise<CommandModule>;
}

export const commands: readonly CommandEntry[] = [
  {
    name: "doctor",
    summary: "check QEMU, OVMF, swtpm, KVM/SMM and pick the accelerator",
    load: () => import("./cmd-doctor.js"),
  },
  {
    name: "image",
    summary: "build or locate the guest test image (signed Debian boot chain)",
    load: () => import("./cmd-image.js"),
  },
  {
    name: "secureboot",
    summary: "Secure Boot templates, NVRAM files, keys, EFI signing",
    load: () => import("./cmd-secureboot.js"),
  },
  {
    name: "demo",
    summary: "signed boot + vTPM, a locally shielded VM, a guarded fabric with HGS",
    load: () => import("./cmd-demo.js"),
  },
  {
    name: "eventlog",
    summary: "show, replay or verify a TCG event log",
    load: () => import("./cmd-eventlog.js"),
  },
  { name: "tpm", summary: "TPM PCRs, quotes, credentials, EK certs", load: () => import("./cmd-tpm.js") },
  {
    name: "vm",
    summary: "Gen-2 VMs: lifecycle, Secure Boot, vTPM, key protector, security policy",
    load: () => import("./cmd-vm.js"),
  },
  {
    name: "guardian",
    summary: "guardians of this host: new, list, export, import, remove",
    load: () => import("./cmd-guardian.js"),
  },
  {
    name: "key-protector",
    summary: "key protector files: new, grant, revoke, show",
    load: () => import("./cmd-key-protector.js"),
  },
  {
    name: "hgs",
    summary: "Host Guardian Service: init, serve, hosts, baselines, policies, audit",
    load: () => import("./cmd-hgs.js"),
  },
  {
    name: "host",
    summary: "guarded host: HGS client configuration, attestation, status, TPM baselines",
    load: () => import("./cmd-host.js"),
  },
];

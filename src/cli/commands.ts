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
    name: "demo",
    summary: "boot a guest under Secure Boot with a vTPM and summarize",
    load: () => import("./cmd-demo.js"),
  },
];

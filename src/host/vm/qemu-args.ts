/**
 * QEMU's command line for a Gen-2 VM, as a pure function of its config and paths. The Shielded
 * policy shows here: no serial console, no human monitor, no guest-agent channel, no 9p shares,
 * no gdb stub, guest memory excluded from core dumps, and a seccomp sandbox that forbids
 * spawning helpers (so `migrate exec:` cannot write plaintext state anywhere).
 */
import type { VmConfig } from "./config.js";
import type { VmPaths } from "./store.js";

export interface QemuLaunch {
  readonly accelerator: "kvm" | "tcg";
  readonly firmwareCode: string;
  /** swtpm control socket when the VM has a vTPM. */
  readonly tpmSocket?: string;
  /** Start with `-incoming defer` to restore saved state. */
  readonly incoming?: boolean;
  /** Start paused (-S). */
  readonly paused?: boolean;
}

export function qemuArgs(c: VmConfig, p: VmPaths, l: QemuLaunch): string[] {
  const shielded = c.security.policy === "Shielded";
  const a: string[] = [
    "-name",
    `${c.name},process=bulwark-${c.name}`,
    "-uuid",
    c.id,
    "-accel",
    l.accelerator,
    "-machine",
    `q35,smm=on${shielded ? ",dump-guest-core=off" : ""}`,
    "-global",
    "driver=cfi.pflash01,property=secure,value=on",
    "-drive",
    `if=pflash,format=raw,unit=0,readonly=on,file=${l.firmwareCode}`,
    "-drive",
    `if=pflash,format=raw,unit=1,file=${p.nvram}`,
    "-m",
    String(c.memoryMiB),
    "-smp",
    String(c.cpus),
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-chardev",
    `socket,id=qmp,path=${p.qmpSocket},server=on,wait=off`,
    "-mon",
    "chardev=qmp,mode=control",
    "-pidfile",
    p.qemuPid,
  ];
  if (shielded) {
    // spawn=deny forbids fork/exec, which -daemonize needs: the runtime detaches QEMU itself.
    a.push("-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny");
  } else {
    a.push("-daemonize");
  }
  c.disks.forEach((d, i) => {
    a.push(
      "-drive",
      `if=none,id=disk${i},format=${d.format},file=${d.path}${d.snapshot ? ",snapshot=on" : ""}`,
      "-device",
      `virtio-blk-pci,drive=disk${i},bootindex=${i + 1}`,
    );
  });
  if (c.network === "user") {
    a.push("-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0,romfile=");
  }
  if (c.tpm.enabled && l.tpmSocket) {
    a.push(
      "-chardev",
      `socket,id=chrtpm,path=${l.tpmSocket}`,
      "-tpmdev",
      "emulator,id=tpm0,chardev=chrtpm",
      "-device",
      "tpm-tis,tpmdev=tpm0",
    );
  }
  if (!shielded) {
    if (c.console) {
      a.push(
        "-chardev",
        `socket,id=ser0,path=${p.consoleSocket},server=on,wait=off,logfile=${p.serialLog},logappend=on`,
        "-serial",
        "chardev:ser0",
      );
    }
    if (c.guestAgent) {
      a.push(
        "-device",
        "virtio-serial-pci",
        "-chardev",
        `socket,id=qga0,path=${p.runDir}/qga.sock,server=on,wait=off`,
        "-device",
        "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
      );
    }
    c.shares.forEach((s, i) => {
      a.push("-virtfs", `local,path=${s.path},mount_tag=${s.tag},security_model=mapped-xattr,id=share${i}`);
    });
    if (c.debugStub)
      a.push(
        "-chardev",
        `socket,id=gdb0,path=${p.runDir}/gdb.sock,server=on,wait=off`,
        "-gdb",
        "chardev:gdb0",
      );
  }
  for (const [name, file] of Object.entries(c.fwCfg)) a.push("-fw_cfg", `name=${name},file=${file}`);
  if (l.incoming) a.push("-incoming", "defer");
  if (l.paused) a.push("-S");
  return a;
}

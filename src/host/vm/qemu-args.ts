/**
 * QEMU's command line for a Gen-2 VM, as a pure function of its config and paths. The Shielded
 * policy shows here: no serial console, no human monitor, no guest-agent channel, no 9p shares,
 * no gdb stub, guest memory excluded from core dumps, and a seccomp sandbox that forbids
 * spawning helpers (so `migrate exec:` cannot write plaintext state anywhere).
 *
 * The one Gen-2 command line: the lab's boot harness runs a throwaway VM through it too, in its
 * "harness" supervision (serial on stdio, no QMP, no reboot).
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
  /**
   * "managed" (default): a long-lived VM the runtime drives over QMP — named, with a pid file,
   * daemonized unless shielded, its console on a socket. "harness": one supervised test boot —
   * the serial console on QEMU's stdio for the caller to read, no QMP, and a guest reboot ends
   * QEMU (-no-reboot).
   */
  readonly supervision?: "managed" | "harness";
}

export function qemuArgs(c: VmConfig, p: VmPaths, l: QemuLaunch): string[] {
  const shielded = c.security.policy === "Shielded";
  const managed = l.supervision !== "harness";
  const a: string[] = [];
  if (managed) a.push("-name", `${c.name},process=bulwark-${c.name}`, "-uuid", c.id);
  a.push(
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
  );
  if (managed) {
    a.push(
      "-chardev",
      `socket,id=qmp,path=${p.qmpSocket},server=on,wait=off`,
      "-mon",
      "chardev=qmp,mode=control",
      "-pidfile",
      p.qemuPid,
    );
    if (shielded) {
      // spawn=deny forbids fork/exec, which -daemonize needs: the runtime detaches QEMU itself.
      a.push("-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny");
    } else {
      a.push("-daemonize");
    }
  } else {
    a.push("-no-reboot");
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
      // A VM's serial console is a socket (bulwark vm console) plus a log; a test boot's is
      // QEMU's stdio, read by the harness.
      const serial = managed
        ? `socket,id=ser0,path=${p.consoleSocket},server=on,wait=off,logfile=${p.serialLog},logappend=on`
        : "stdio,id=ser0,signal=off";
      a.push("-chardev", serial, "-serial", "chardev:ser0");
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

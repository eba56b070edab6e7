import { defineErrors, errorFactory, Exit } from "../core/errors.js";

export const HostErrors = defineErrors("HOST", {
  HOST_ERR_TOOL_MISSING: {
    summary: "A program Bulwark needs is not installed; the message names the Debian package to install.",
    exit: Exit.missingDependency,
    http: 500,
  },
  HOST_ERR_TOOL_FAILED: {
    summary:
      "A program Bulwark ran (apt-get, sgdisk, mtools, swtpm, QEMU, ...) failed; its stderr is included.",
    exit: Exit.externalFailure,
    http: 500,
  },
  HOST_ERR_FIRMWARE_NOT_FOUND: {
    summary:
      "No OVMF firmware matching the requested features was found through QEMU's firmware descriptors.",
    exit: Exit.missingDependency,
    http: 500,
  },
  HOST_ERR_QEMU_EXITED: {
    summary: "QEMU exited before the guest finished; its stderr is included.",
    exit: Exit.externalFailure,
    http: 500,
  },
  HOST_ERR_IMAGE_BUILD: {
    summary: "Building the guest test image failed.",
    exit: Exit.externalFailure,
    http: 500,
  },
  HOST_ERR_QMP: {
    summary: "A QMP exchange with QEMU failed (connection, timeout or an error reply).",
    exit: Exit.externalFailure,
    http: 502,
  },
  HOST_ERR_STATE_DIR: {
    summary:
      "The state directory cannot hold Bulwark's files: not a directory, on procfs/sysfs or another pseudo file system, not owned by this user, writable by others, or not writable; the message says which.",
    exit: Exit.invalidInput,
    http: 500,
  },
  HOST_ERR_FILE_MISSING: {
    summary:
      "A file or directory Bulwark needs does not exist (or a path component is not a directory); the message names it and what it is.",
    exit: Exit.notFound,
    http: 500,
  },
  HOST_ERR_FILE_ACCESS: {
    summary:
      "A file Bulwark needs cannot be read or written: permission denied, a directory where a file belongs, too many symbolic links or a read-only file system; the message names it.",
    exit: Exit.io,
    http: 500,
  },
  HOST_ERR_INTERRUPTED: {
    summary: "The operation was interrupted (Ctrl-C or a signal); child processes were stopped.",
    exit: Exit.interrupted,
    http: 503,
  },
});
export type HostErrorCode = keyof typeof HostErrors;
export const hostError = errorFactory(HostErrors, "HostError");

export const GuardianStoreErrors = defineErrors("GUARDIAN", {
  GUARDIAN_ERR_NOT_FOUND: {
    summary: "No guardian with that name on this host.",
    exit: Exit.notFound,
    http: 404,
  },
  GUARDIAN_ERR_EXISTS: {
    summary: "A guardian with that name already exists on this host.",
    exit: Exit.conflict,
    http: 409,
  },
  GUARDIAN_ERR_INVALID_NAME: {
    summary:
      "A guardian stored on this host is named like a VM: letters, digits, '.', '_' and '-', 1-64 characters, not starting with '.' or '-' (give an imported guardian one with --name).",
    exit: Exit.invalidInput,
    http: 400,
  },
});
export const guardianError = errorFactory(GuardianStoreErrors, "GuardianStoreError");

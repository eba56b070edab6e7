import { defineErrors, errorFactory, Exit } from "../../core/errors.js";

export const VmErrors = defineErrors("VM", {
  VM_ERR_NOT_FOUND: {
    summary: "No VM with that name exists in this state directory.",
    exit: Exit.notFound,
    http: 404,
  },
  VM_ERR_EXISTS: { summary: "A VM with that name already exists.", exit: Exit.conflict, http: 409 },
  VM_ERR_INVALID_NAME: {
    summary: "VM names are 1-64 characters: letters, digits, '.', '_' and '-', not starting with '.' or '-'.",
    exit: Exit.invalidInput,
    http: 400,
  },
  VM_ERR_INVALID_CONFIG: {
    summary: "The VM configuration is not valid; the message names the field.",
    exit: Exit.invalidInput,
    http: 400,
  },
  VM_ERR_LOCKED: {
    summary: "Another Bulwark process is driving this VM right now; try again when it finishes.",
    exit: Exit.conflict,
    http: 409,
  },
  VM_ERR_STATE: {
    summary:
      "The VM is not in a state that allows this operation (e.g. settings change only while it is off).",
    exit: Exit.conflict,
    http: 409,
  },
  VM_ERR_POLICY_LOCKED: {
    summary: "The setting is forced and locked by the Shielded security policy.",
    exit: Exit.refused,
    http: 403,
  },
  VM_ERR_OWNER_KEY_REQUIRED: {
    summary: "Changing a shielded VM needs the owner guardian's private key on this host.",
    exit: Exit.refused,
    http: 403,
  },
  VM_ERR_KEY_PROTECTOR_REQUIRED: {
    summary: "This needs a key protector first (bulwark vm key-protector set VM --new-local), as in Hyper-V.",
    exit: Exit.refused,
    http: 409,
  },
  VM_ERR_SETTINGS_TAMPERED: {
    summary:
      "The VM's files differ from the settings its owner signed (config.json, nvram.fd or the signed statement); no key is released. The message names what differs.",
    exit: Exit.refused,
    http: 409,
  },
  VM_ERR_SETTINGS_UNSIGNED: {
    summary:
      "The VM has a key protector but no settings signed by its owner (made by an older Bulwark); run 'bulwark vm settings sign VM' on a host holding the owner's key.",
    exit: Exit.refused,
    http: 409,
  },
  VM_ERR_QMP_REFUSED: {
    summary:
      "The VM's security policy refuses this QMP command: only status and power commands (with encryption on, also host-side queries) pass; the message says the command's class.",
    exit: Exit.refused,
    http: 403,
  },
  VM_ERR_START_FAILED: {
    summary:
      "QEMU or swtpm failed to start the VM or died right after starting; the tail of their logs is included, nothing is left running and nothing was changed.",
    exit: Exit.externalFailure,
    http: 500,
  },
  VM_ERR_VTPM_STATE_MISSING: {
    summary:
      "The VM's vTPM was manufactured before but its state is gone; Bulwark will not silently make a new vTPM (new EK, the guest's sealed secrets lost). Restore the tpm/ directory, or run 'bulwark vm tpm reset VM --yes'.",
    exit: Exit.refused,
    http: 409,
  },
  VM_ERR_CONFIRMATION_REQUIRED: {
    summary:
      "This operation destroys data (e.g. 'vm tpm reset' discards the vTPM and its EK); repeat it with --yes.",
    exit: Exit.refused,
    http: 400,
  },
  VM_ERR_SAVED_STATE: {
    summary:
      "The saved state could not be written or restored; the VM and its last good state are unchanged.",
    exit: Exit.externalFailure,
    http: 500,
  },
  VM_ERR_STATE_ROLLBACK: {
    summary:
      "The vTPM state or saved state is older than the version sealed in the VM's secrets (a rolled-back copy); it is refused and left as it is.",
    exit: Exit.refused,
    http: 409,
  },
  VM_ERR_VTPM_KEY: {
    summary:
      "The vTPM state does not open with the vTPM key in the VM's secrets (re-keyed by key-protector roll or revoke after those secrets were sealed, damaged, or another VM's).",
    exit: Exit.refused,
    http: 409,
  },
  VM_ERR_CONSOLE_UNAVAILABLE: {
    summary: "This VM has no console (shielded VMs have none, and the VM must be running).",
    exit: Exit.refused,
    http: 409,
  },
});
export type VmErrorCode = keyof typeof VmErrors;
export const vmError = errorFactory(VmErrors, "VmError");

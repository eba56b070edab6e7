import { readFile } from "node:fs/promises";
import { guardianThumbprint, type Guardian } from "../protector/guardian.js";
import {
  createKeyProtector,
  grantGuardian,
  inspectKeyProtector,
  parseKeyProtector,
  revokeGuardian,
} from "../protector/key-protector.js";
import { writeFileAtomic } from "../io/atomic.js";
import { GuardianStore } from "../host/guardians.js";
import { vmError } from "../host/vm/errors.js";
import { hostContext } from "../host/index.js";
import { localOwnerOf } from "../host/vm/keys.js";
import { grantVmGuardian, rekeyVm } from "../host/vm/rekey.js";
import { VmStore } from "../host/vm/store.js";
import { parse, printJson, usageError } from "./args.js";

const help = `Usage: bulwark key-protector <verb> [--state-dir DIR] [--json]

  new --owner G [--guardian G]... --out FILE
        a key protector owned by local guardian G (its signing key signs the guardian set)
  grant (FILE | --vm NAME) --guardian G [--out FILE]
        add guardian G (public is enough); needs the owner's private key on this host.
        With --vm: holds the VM's lock; the VM may be running (its keys do not change)
  revoke (FILE | --vm NAME) --guardian G [--out FILE]
        remove guardian G and roll the transport key (what G unwrapped before opens nothing
        sealed for the new protector). With --vm: the VM must be off (not saved); its vTPM
        state and saved-state keys are replaced too, so G's old copies open nothing current
        (a FILE installed later with vm key-protector set keeps the VM's keys: follow it with
        bulwark vm key-protector roll NAME)
  show (FILE | --vm NAME)

A key protector wraps a VM's transport key to each guardian; the owner signs the guardian set.
Moving a VM to another host: export that host's guardian (guardian export UntrustedGuardian),
import it here, grant it, and copy the VM directory. See docs/formats/key-protector.md.`;
import { stateDirOption } from "./state-dir.js";

async function ownerFor(store: GuardianStore, kpBytes: Uint8Array): Promise<Guardian> {
  const kp = parseKeyProtector(kpBytes);
  const owner = await localOwnerOf(kp, store);
  if (!owner) {
    throw vmError(
      "VM_ERR_OWNER_KEY_REQUIRED",
      `the owner guardian '${kp.owner.name}' (${guardianThumbprint(kp.owner)}) has no private key on this host`,
    );
  }
  return owner;
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    "state-dir": { type: "string" },
    owner: { type: "string" },
    guardian: { type: "string", multiple: true },
    out: { type: "string" },
    vm: { type: "string" },
  });
  if (values.help || positionals.length === 0) {
    process.stdout.write(`${help}\n`);
    return values.help ? 0 : 2;
  }
  const stateDir = stateDirOption(values["state-dir"]);
  const store = new GuardianStore(stateDir);
  const [verb, file] = positionals;
  const json = values.json === true;
  const source = values.vm ? new VmStore(stateDir).paths(values.vm).keyProtector : file;
  const show = (bytes: Uint8Array) => {
    const info = inspectKeyProtector(bytes);
    if (json) printJson(info);
    else {
      process.stdout.write(
        `owner: ${info.owner.name} (${info.owner.thumbprint})\nguardians: ${info.guardians.map((g) => g.name).join(", ")}\n` +
          `owner signature: ${info.ownerSignature.valid ? "valid" : `INVALID (${info.ownerSignature.error})`}\n`,
      );
    }
  };
  switch (verb) {
    case "new": {
      if (!values.owner || !values.out) throw usageError("key-protector new needs --owner G and --out FILE");
      const owner = await store.getPrivate(values.owner);
      const guardians = [];
      for (const g of values.guardian ?? []) guardians.push(await store.getPublic(g));
      const { keyProtector, transportKey } = createKeyProtector({ owner, guardians });
      transportKey.key.fill(0);
      await writeFileAtomic(values.out, keyProtector, 0o644);
      show(keyProtector);
      return 0;
    }
    case "grant":
    case "revoke": {
      if (!source) throw usageError(`key-protector ${verb} needs FILE or --vm NAME`);
      const names = values.guardian ?? [];
      if (names.length !== 1) throw usageError(`key-protector ${verb} needs exactly one --guardian G`);
      const guardian = names[0] as string;
      if (values.vm && values.out === undefined) {
        // The VM's own protector: under the VM's lock, and a revocation re-keys the VM (host/vm/rekey.ts).
        const ctx = hostContext(stateDir);
        if (verb === "grant") await grantVmGuardian(ctx, values.vm, await store.getPublic(guardian));
        else await rekeyVm(ctx, values.vm, { revoke: guardian });
        show(new Uint8Array(await readFile(source)));
        return 0;
      }
      const bytes = new Uint8Array(await readFile(source));
      const owner = await ownerFor(store, bytes);
      const unwrapWith = await store.localGuardians();
      const next =
        verb === "grant"
          ? grantGuardian(bytes, await store.getPublic(guardian), { owner, unwrapWith })
          : revokeGuardian(bytes, guardian, { owner, unwrapWith });
      await writeFileAtomic(values.out ?? source, next, 0o644);
      show(next);
      return 0;
    }
    case "show": {
      if (!source) throw usageError("key-protector show needs FILE or --vm NAME");
      show(new Uint8Array(await readFile(source)));
      return 0;
    }
    default:
      throw usageError(`unknown key-protector verb '${verb}'\n\n${help}`);
  }
}

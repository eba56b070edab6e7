/**
 * Demo part 3: a local guarded fabric. A Host Guardian Service (SQLite, temp directory, HTTPS on
 * 127.0.0.1) in host-key mode, a guarded host (temp state directory) and a shielded VM whose key
 * protector names only the HGS guardian, provisioned on a separate "owner" state directory and
 * moved to the host. The host is refused while unregistered (UnauthorizedHost, VM not started),
 * then registered; the VM starts with keys released by HGS and its key protector is rolled.
 * Everything is stopped and removed at the end.
 *
 * The helpers (startLocalHgs, provisionShieldedVmForHgs, guardHost) are also what the guarded-host
 * integration tests use, so the demo and the tests exercise the same flow.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { FastifyInstance } from "fastify";
import { isBulwarkError } from "../core/errors.js";
import { buildServer } from "../hgs/http/server.js";
import { addKeyHost, listAuditEntries, updateSettings } from "../hgs/admin.js";
import { initHgs, type HgsContext } from "../hgs/context.js";
import { importGuardianPublicPem } from "../protector/guardian.js";
import {
  createKeyProtector,
  inspectKeyProtector,
  type KeyProtectorInfo,
} from "../protector/key-protector.js";
import { ensureGuestImage } from "../lab/guest-image.js";
import { scriptFwCfgName } from "../lab/guest-init.js";
import { hostGuardStatus } from "../host/guarded/attestation.js";
import { writeConfig, type HgsClientConfig } from "../host/guarded/config.js";
import { hostKeyPublic, keyReleaseKey } from "../host/guarded/identity.js";
import { newVmConfig, type VmConfig } from "../host/vm/config.js";
import { hostContext } from "../host/index.js";
import { createVm, startVm, turnOffVm, vmStatus } from "../host/vm/lifecycle.js";
import { installWithFreshSecrets } from "../host/vm/keys.js";
import { setSecurityPolicy } from "../host/vm/settings.js";
import { formatStatus } from "./cmd-host.js";

/** An in-process HGS with one or more HTTPS nodes (fastify servers over one service and database). */
export interface LocalHgs {
  readonly dir: string;
  readonly ctx: HgsContext;
  readonly caPem: string;
  readonly guardianPem: string;
  /** URLs of the nodes, in the order they were started. */
  readonly urls: string[];
  /** Starts another node (same database) and returns its URL. */
  addNode(): Promise<string>;
  /** Stops one node: its URL then refuses connections. */
  stopNode(url: string): Promise<void>;
  /** Registers a host key (PEM) in host-key mode; returns the host id. */
  registerHostKey(name: string, publicKeyPem: string): Promise<string>;
  stop(): Promise<void>;
}

export async function startLocalHgs(
  dir: string,
  opts: { nodes?: number; healthLifetimeSeconds?: number } = {},
): Promise<LocalHgs> {
  const init = await initHgs(dir, { listen: "127.0.0.1:0" });
  const ctx = init.ctx;
  await updateSettings(ctx, {
    mode: "key",
    ...(opts.healthLifetimeSeconds ? { healthCertificateLifetimeSeconds: opts.healthLifetimeSeconds } : {}),
  });
  const nodes = new Map<string, FastifyInstance>();
  const urls: string[] = [];
  const addNode = async () => {
    const app = await buildServer(ctx, { tls: true });
    await app.listen({ host: "127.0.0.1", port: 0 });
    const url = `https://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    nodes.set(url, app);
    urls.push(url);
    return url;
  };
  try {
    for (let i = 0; i < (opts.nodes ?? 1); i++) await addNode();
  } catch (e) {
    for (const app of nodes.values()) await app.close();
    await ctx.close();
    throw e;
  }
  return {
    dir,
    ctx,
    caPem: ctx.dir.tlsCertPem,
    guardianPem: ctx.dir.guardianPublicPem,
    urls,
    addNode,
    async stopNode(url) {
      const app = nodes.get(url);
      nodes.delete(url);
      await app?.close();
    },
    async registerHostKey(name, pem) {
      return (await addKeyHost(ctx, name, pem)).id;
    },
    async stop() {
      for (const app of nodes.values()) await app.close();
      nodes.clear();
      await ctx.close();
    },
  };
}

/** Configures a state directory as a guarded host of `urls` (host-key mode); returns its public key. */
export async function guardHost(
  stateDir: string,
  urls: readonly string[],
  caPem: string,
  extra: Partial<Pick<HgsClientConfig, "renewFraction" | "timeoutMs">> = {},
): Promise<{ hostId: string; publicKeyPem: string }> {
  const [hgsUrl, ...fallbackUrls] = urls;
  await writeConfig(stateDir, {
    version: 1,
    mode: "HostGuardianService",
    ...(hgsUrl ? { hgsUrl } : {}),
    fallbackUrls,
    caPem,
    attestationMode: "key",
    renewFraction: extra.renewFraction ?? 0.25,
    timeoutMs: extra.timeoutMs ?? 5000,
  });
  await keyReleaseKey(stateDir);
  const k = await hostKeyPublic(stateDir);
  return { hostId: k.hostId, publicKeyPem: k.pem };
}

/**
 * The owner's side: on the owner's own state directory, creates the VM with a key protector
 * owned by an `owner` guardian and granted to the HGS guardian, shields it, then revokes the owner
 * as an unwrapper (the guardian set becomes HGS alone; the owner still signs it) and moves the VM
 * directory to the guarded host. Hyper-V's equivalent is creating the shielded VM from a template
 * disk with a shielding data file that names the fabric's guardian.
 */
export async function provisionShieldedVmForHgs(o: {
  readonly ownerStateDir: string;
  readonly guardedStateDir: string;
  readonly name: string;
  readonly hgsGuardianPem: string;
  readonly disk: string;
  readonly fwCfg?: Readonly<Record<string, string>>;
  readonly patch?: Partial<VmConfig>;
}): Promise<KeyProtectorInfo> {
  const ownerHost = hostContext(o.ownerStateDir);
  const owner = (await ownerHost.guardians.has("owner"))
    ? await ownerHost.guardians.getPrivate("owner")
    : await ownerHost.guardians.create("owner");
  const hgsGuardian = importGuardianPublicPem(o.hgsGuardianPem);
  const base = {
    ...newVmConfig({
      name: o.name,
      disks: [{ path: o.disk, format: "raw", snapshot: true }],
      network: "none",
      template: "MicrosoftUEFICertificateAuthority",
    }),
    ...(o.fwCfg ? { fwCfg: { ...o.fwCfg } } : {}),
    ...o.patch,
  };
  const p = await createVm(ownerHost, base);
  // HGS is the only guardian; the owner signs, and seals fresh VM secrets under the transport key
  // it made (a guardian revoked afterwards would roll that key away from the sealed secrets).
  const { keyProtector: hgsOnly, transportKey } = createKeyProtector({
    owner,
    guardians: [hgsGuardian],
    ownerCanUnwrap: false,
  });
  await installWithFreshSecrets(p, hgsOnly, transportKey);
  await setSecurityPolicy(ownerHost, o.name, { shielded: true });
  const dest = hostContext(o.guardedStateDir).store.paths(o.name).dir;
  await cp(p.dir, dest, { recursive: true, errorOnExist: true, force: false });
  await rm(p.dir, { recursive: true, force: true });
  return inspectKeyProtector(hgsOnly);
}

export interface FabricDemoOptions {
  readonly json: boolean;
  readonly say: (m: string) => void;
  /** Ctrl-C: checked between steps; the VM and HGS are stopped on the way out. */
  readonly signal?: AbortSignal;
}

/** Demo part 3 (see the file comment). */
export async function fabricDemo(opts: FabricDemoOptions): Promise<{ ok: boolean; summary: unknown }> {
  const say = (m: string) => {
    if (opts.signal?.aborted) throw new Error("interrupted");
    opts.say(m);
  };
  const root = await mkdtemp(path.join(os.tmpdir(), "bulwark-fabric-"));
  const hostDir = path.join(root, "guarded-host");
  const ownerDir = path.join(root, "owner");
  const name = "guarded-demo";
  const ctx = hostContext(hostDir, (m) => say(`  ${m}`));
  let hgs: LocalHgs | undefined;
  const t0 = Date.now();
  try {
    say(`starting a Host Guardian Service (SQLite, HTTPS on 127.0.0.1, host-key mode) in ${root}/hgs`);
    hgs = await startLocalHgs(path.join(root, "hgs"));
    const hgsUrl = hgs.urls[0] as string;
    say(`HGS listening on ${hgsUrl}`);
    const host = await guardHost(hostDir, [hgsUrl], hgs.caPem);
    say(
      `guarded host configured (bulwark host config --hgs ${hgsUrl}); host id ${host.hostId.slice(0, 16)}…`,
    );
    const image = await ensureGuestImage("tpm2tools", { progress: say });
    const script = path.join(root, "guest-script.sh");
    await writeFile(script, "while true; do tpm2_pcrread sha256:7 >/dev/null 2>&1; sleep 2; done\n");
    say(
      "owner: creating a shielded VM whose key protector names only the HGS guardian, then moving it to the host",
    );
    const kp = await provisionShieldedVmForHgs({
      ownerStateDir: ownerDir,
      guardedStateDir: hostDir,
      name,
      hgsGuardianPem: hgs.guardianPem,
      disk: image.disk,
      fwCfg: { [scriptFwCfgName]: script },
    });

    say("starting the VM on the host before the HGS administrator registered it …");
    let refusal = "";
    try {
      await startVm(ctx, name);
    } catch (e) {
      refusal = isBulwarkError(e) ? e.code : String(e);
    }
    const refusedStatus = await hostGuardStatus(hostDir);
    const refusedState = (await vmStatus(ctx, name)).state;
    say(`  refused: ${refusal} (AttestationStatus ${refusedStatus.AttestationStatus}); VM ${refusedState}`);

    say("HGS administrator: bulwark hgs host add-key --name guarded-demo-host --public-key host.pem");
    await hgs.registerHostKey("guarded-demo-host", host.publicKeyPem);
    const tStart = Date.now();
    say("starting the VM: attestation → health certificate → key release (transport key rolled)");
    await startVm(ctx, name);
    const startSeconds = (Date.now() - tStart) / 1000;
    await sleep(5000, undefined, opts.signal ? { signal: opts.signal } : {});
    const running = await vmStatus(ctx, name);
    const after = inspectKeyProtector(new Uint8Array(await readFile(ctx.store.paths(name).keyProtector)));
    const status = await hostGuardStatus(hostDir);
    const audit = (await listAuditEntries(hgs.ctx, 0)).map((e) => e.event);
    const summary = {
      hgs: hgsUrl,
      vm: name,
      keyProtector: {
        owner: kp.owner.name,
        guardians: kp.guardians.map((g) => g.name),
        keyGenerationBefore: kp.keyGeneration,
        keyGenerationAfter: after.keyGeneration,
      },
      unregistered: {
        error: refusal,
        attestationStatus: refusedStatus.AttestationStatus,
        vmState: refusedState,
      },
      registered: { vmState: running.state, startSeconds },
      hostStatus: status,
      auditEvents: audit,
      seconds: (Date.now() - t0) / 1000,
    };
    const ok =
      refusal === "HOSTGUARD_ERR_ATTESTATION_FAILED" &&
      refusedStatus.AttestationStatus === "UnauthorizedHost" &&
      refusedState === "Off" &&
      running.state === "Running" &&
      after.keyGeneration === kp.keyGeneration + 1 &&
      status.AttestationStatus === "Passed";
    if (!opts.json) {
      process.stdout.write(
        [
          "",
          "── Guarded fabric (HGS, host-key attestation) ──",
          `Shielded VM:               ${name}, key protector owner '${kp.owner.name}', guardians ${kp.guardians.map((g) => g.name).join(", ")}`,
          `Unregistered host:         ${refusal} (${refusedStatus.AttestationStatus}); VM ${refusedState}`,
          `Registered host:           VM ${running.state}, started in ${startSeconds.toFixed(1)} s with keys from HGS`,
          `Key protector:             transport key generation ${kp.keyGeneration} → ${after.keyGeneration} (rolled by HGS)`,
          `HGS audit:                 ${audit.join(", ")}`,
          "",
          "bulwark host status:",
          formatStatus(status),
          "",
        ].join("\n"),
      );
    }
    return { ok, summary };
  } finally {
    await turnOffVm(ctx, name).catch(() => undefined);
    await hgs?.stop().catch(() => undefined);
    await rm(root, { recursive: true, force: true });
  }
}

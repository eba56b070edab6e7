/**
 * Regenerates test/vectors/tpm/ from a real swtpm and tpm2-tools:
 *   npx tsc -p tsconfig.json && node dist/test/helpers/tpm-gen-vectors.js
 * See test/vectors/tpm/README.md for what each file is.
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { RecordingTransport } from "../../src/tpm/transport/mock.js";
import { Tpm } from "../../src/tpm/client.js";
import { repoPath } from "./paths.js";
import { startSwtpm } from "./tpm-swtpm.js";
import { seededRandom, transcriptScript } from "./tpm-transcript.js";

const out = repoPath("test/vectors/tpm");
const sw = await startSwtpm({ manufacture: true });
try {
  for (const [name, alg, scheme] of [
    ["quote-rsassa", "rsa", "rsassa"],
    ["quote-rsapss", "rsa", "rsapss"],
    ["quote-ecdsa", "ecc", "ecdsa"],
  ] as const) {
    const d = path.join(out, name);
    mkdirSync(d, { recursive: true });
    const t = (n: string) => path.join(sw.stateDir, `${name}-${n}`);
    await sw.tool("tpm2_createek", ["-c", t("ek.ctx"), "-G", "rsa", "-u", t("ek.pub")]);
    await sw.tool("tpm2_flushcontext", ["-t"]);
    await sw.tool("tpm2_createak", [
      "-C",
      t("ek.ctx"),
      "-c",
      t("ak.ctx"),
      "-G",
      alg,
      "-g",
      "sha256",
      "-s",
      scheme,
      "-u",
      path.join(d, "ak.pub"),
      "-n",
      path.join(d, "ak.name"),
    ]);
    await sw.tool("tpm2_flushcontext", ["-t"]);
    await sw.tool("tpm2_flushcontext", ["-s"]);
    const nonce = "b0b0a1a2a3a4a5a6a7a8a9aaabacadae";
    writeFileSync(path.join(d, "nonce.hex"), `${nonce}\n`);
    writeFileSync(path.join(d, "pcr-list.txt"), "sha256:0,1,2,3,4,5,6,7+sha1:0\n");
    await sw.tool("tpm2_quote", [
      "-c",
      t("ak.ctx"),
      "-l",
      "sha256:0,1,2,3,4,5,6,7+sha1:0",
      "-q",
      nonce,
      "-m",
      path.join(d, "quote.msg"),
      "-s",
      path.join(d, "quote.sig"),
      "-o",
      path.join(d, "quote.pcrs"),
      "-g",
      "sha256",
      "--scheme",
      scheme,
    ]);
    await sw.tool("tpm2_flushcontext", ["-t"]);
    copyFileSync(t("ek.pub"), path.join(d, "ek.pub"));
  }
  const cred = path.join(out, "credential");
  mkdirSync(cred, { recursive: true });
  writeFileSync(path.join(cred, "secret.bin"), "0123456789abcdef0123456789abcdef");
  const akName = readFileSync(path.join(out, "quote-rsassa", "ak.name")).toString("hex");
  await sw.tool("tpm2_makecredential", [
    "-T",
    "none",
    "-u",
    path.join(out, "quote-rsassa", "ek.pub"),
    "-s",
    path.join(cred, "secret.bin"),
    "-n",
    akName,
    "-o",
    path.join(cred, "cred.blob"),
  ]);

  const rec = new RecordingTransport(sw.transport);
  const tpm = new Tpm(rec, { random: seededRandom("bulwark-transcript") });
  await transcriptScript(tpm);
  mkdirSync(path.join(out, "transcripts"), { recursive: true });
  writeFileSync(
    path.join(out, "transcripts", "session.json"),
    `${JSON.stringify(rec.transcript("swtpm 0.7.1 (libtpms): properties, PCR_Read, SRK, sealed object via HMAC and password sessions, AK quote; nonces from seededRandom('bulwark-transcript')"), null, 1)}\n`,
  );
} finally {
  await sw.stop();
}

import { ensureGuestImage, guestVariants, type GuestVariant } from "../lab/guest-image.js";
import { parse, printJson, usageError } from "./args.js";

const help = `Usage: bulwark image build [--variant base|tpm2tools | --all] [--force] [--quiet] [--json]
       bulwark image path [--variant base|tpm2tools] [--json]

The guest test image: Debian's signed shim → grub → kernel and a busybox initramfs that reports
Secure Boot, lockdown, TPM and the TCG event log on the serial console. Built from Debian packages
(apt-get download) into .cache/guest/<key>, rebuilt when package versions change or a file is corrupt.
The tpm2tools variant also carries tpm2-tools and runs a script passed through fw_cfg.`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    variant: { type: "string" },
    all: { type: "boolean" },
    force: { type: "boolean" },
    quiet: { type: "boolean" },
  });
  if (values.help) {
    process.stdout.write(`${help}\n`);
    return 0;
  }
  const verb = positionals[0];
  if (verb !== "build" && verb !== "path") throw usageError(`expected 'build' or 'path'\n\n${help}`);
  const variant = (values.variant ?? "base") as GuestVariant;
  if (!guestVariants.includes(variant)) throw usageError(`unknown variant '${variant}'`);
  const quiet = values.quiet === true || values.json === true;
  const progress = (m: string) => {
    if (!quiet || m.startsWith("building")) process.stderr.write(`image: ${m}\n`);
  };
  const variants = values.all ? guestVariants : [variant];
  const images = [];
  for (const v of variants) {
    images.push(await ensureGuestImage(v, { progress, force: values.force === true && v === variants[0] }));
  }
  if (values.json) printJson(images.length === 1 ? images[0] : images);
  else if (!values.quiet) for (const i of images) process.stdout.write(`${i.variant}\t${i.disk}\n`);
  return 0;
}

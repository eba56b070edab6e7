/**
 * The guest test image's /init (busybox sh). It prints machine-readable markers on the serial
 * console, which src/lab/boot.ts parses, then powers the VM off.
 */
export const markers = {
  ready: "BULWARK-READY",
  secureBoot: "BULWARK-SECUREBOOT=",
  lockdown: "BULWARK-LOCKDOWN=",
  tpm: "BULWARK-TPM=",
  eventLogBegin: "BULWARK-EVENTLOG-BEGIN",
  eventLogEnd: "BULWARK-EVENTLOG-END",
  eventLogNone: "BULWARK-EVENTLOG=none",
  scriptBegin: "BULWARK-SCRIPT-BEGIN",
  scriptEnd: "BULWARK-SCRIPT-END rc=",
  done: "BULWARK-DONE",
} as const;

/** fw_cfg item through which a test passes a shell script to the tpm2tools variant. */
export const scriptFwCfgName = "opt/bulwark/script";

export const guestInitScript = `#!/bin/busybox sh
/bin/busybox mkdir -p /usr/bin /usr/sbin /sbin
/bin/busybox --install -s /bin
export PATH=/usr/bin:/bin:/usr/sbin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
echo 1 > /proc/sys/kernel/printk
for m in /lib/modules/*.ko; do insmod "$m" 2>/dev/null; done
mount -t efivarfs efivarfs /sys/firmware/efi/efivars 2>/dev/null
mkdir -p /tmp /run
echo ${markers.ready}
sbvar=/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c
# efivarfs files are 4 attribute bytes followed by the data byte.
if [ -r $sbvar ]; then set -- $(od -An -tu1 $sbvar); sb=\${5:-unknown}; else sb=unknown; fi
echo "${markers.secureBoot}$sb"
echo "${markers.lockdown}$(cat /sys/kernel/security/lockdown 2>/dev/null || echo unknown)"
if [ -e /dev/tpm0 ]; then echo "${markers.tpm}1"; else echo "${markers.tpm}0"; fi
log=/sys/kernel/security/tpm0/binary_bios_measurements
if [ -r $log ]; then
  echo ${markers.eventLogBegin}
  base64 $log
  echo ${markers.eventLogEnd}
else
  echo ${markers.eventLogNone}
fi
script=/sys/firmware/qemu_fw_cfg/by_name/${scriptFwCfgName}/raw
if [ -r $script ]; then
  export TPM2TOOLS_TCTI=device:/dev/tpmrm0
  cp $script /tmp/script.sh
  echo ${markers.scriptBegin}
  sh /tmp/script.sh 2>&1
  echo "${markers.scriptEnd}$?"
fi
echo ${markers.done}
sync
poweroff -f
`;

export const grubConfig = `set timeout=0
set default=0
search --no-floppy --file --set=root /bulwark/vmlinuz
menuentry "Bulwark guest" {
  linux /bulwark/vmlinuz console=ttyS0,115200 panic=-1 quiet loglevel=1 intel_iommu=on iommu=pt
  initrd /bulwark/initrd.img
}
`;

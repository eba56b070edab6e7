#!/bin/sh
# Rebuilds dumplog.efi from dumplog.c (gcc + GNU ld's i386pep PE emulation; no gnu-efi needed).
# Deterministic: no .comment section (-fno-ident), no PE timestamp (--no-insert-timestamp).
set -e
cd "$(dirname "$0")"
gcc -O2 -ffreestanding -fno-stack-protector -fno-stack-check -fshort-wchar -mno-red-zone -fPIE \
  -fno-asynchronous-unwind-tables -fno-ident -c dumplog.c -o /tmp/dumplog.$$.o
ld -m i386pep --subsystem 10 -e efi_main -nostdlib --strip-all --no-insert-timestamp \
  -o dumplog.efi /tmp/dumplog.$$.o
rm -f /tmp/dumplog.$$.o

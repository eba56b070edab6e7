#!/bin/sh
# Rebuilds the PE test vectors (Debian 12: gcc, binutils, openssl, sbsigntool). Not run by tests.
set -eu
cd "$(dirname "$0")"
CFLAGS="-O2 -fno-stack-protector -fpic -mno-red-zone -ffreestanding"
LDFLAGS="-nostdlib -znocombreloc -shared -Bsymbolic --no-undefined -e efi_main"
gcc $CFLAGS -fshort-wchar -c hello.c -o /tmp/hello.o
ld $LDFLAGS /tmp/hello.o -o /tmp/hello.so
objcopy -j .text -j .rodata -j .data -j .dynamic -j .dynsym -j '.rel*' -j '.rela*' --target=efi-app-x86_64 /tmp/hello.so hello.efi
gcc -m32 $CFLAGS -c hello.c -o /tmp/hello32.o
ld -m elf_i386 $LDFLAGS /tmp/hello32.o -o /tmp/hello32.so
objcopy -j .text -j .rodata -j .data -j .dynamic -j .dynsym -j '.rel*' --target=pei-i386 --subsystem efi-app /tmp/hello32.so hello32.efi
openssl req -x509 -newkey rsa:2048 -nodes -keyout /tmp/signer.key -out signer.pem -subj "/CN=Bulwark PE test vector signer" -days 36500
sbsign --key /tmp/signer.key --cert signer.pem --output hello-signed.efi hello.efi
sbsign --key /tmp/signer.key --cert signer.pem --output hello32-signed.efi hello32.efi
rm -f /tmp/signer.key

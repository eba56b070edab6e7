/*
 * dumplog.efi: a minimal UEFI application that prints the firmware's TCG event logs on the
 * first serial port (COM1, I/O port 0x3F8) as base64 between markers, then powers the
 * machine off. Used to capture real OVMF event logs without a guest OS (see ../README.md).
 *
 * Protocol: EFI_TCG2_PROTOCOL.GetEventLog (TCG EFI Protocol Specification, Family 2.0,
 * Level 00 Revision 00.13, section 6.5). Formats: EFI_TCG2_EVENT_LOG_FORMAT_TCG_2 (2,
 * crypto-agile TCG_PCR_EVENT2) and EFI_TCG2_EVENT_LOG_FORMAT_TCG_1_2 (1, SHA-1
 * TCG_PCClientPCREvent). Then it reads every PCR of every active bank with TPM2_PCR_Read so the
 * log can be replayed against the TPM's own values. No UEFI headers are needed: the few tables used are declared below.
 */
typedef unsigned long long UINT64;
typedef unsigned int UINT32;
typedef unsigned short UINT16;
typedef unsigned char UINT8;
typedef UINT64 UINTN;
typedef UINT64 EFI_STATUS;
#define EFIAPI __attribute__((ms_abi))

typedef struct { UINT32 a; UINT16 b, c; UINT8 d[8]; } EFI_GUID;
typedef struct { UINT64 Signature; UINT32 Revision, HeaderSize, CRC32, Reserved; } EFI_TABLE_HEADER;

typedef struct {
  EFI_TABLE_HEADER Hdr;
  void *FirmwareVendor;
  UINT32 FirmwareRevision;
  void *ConsoleInHandle, *ConIn, *ConsoleOutHandle, *ConOut, *StandardErrorHandle, *StdErr;
  void **RuntimeServices; /* EFI_RUNTIME_SERVICES: header then function pointers */
  void **BootServices;    /* EFI_BOOT_SERVICES: header then function pointers */
} EFI_SYSTEM_TABLE;

typedef EFI_STATUS(EFIAPI *LOCATE_PROTOCOL)(EFI_GUID *, void *, void **);
typedef void(EFIAPI *RESET_SYSTEM)(UINT32, EFI_STATUS, UINTN, void *);

typedef struct TCG2 TCG2;
typedef EFI_STATUS(EFIAPI *GET_EVENT_LOG)(TCG2 *, UINT32, UINT64 *, UINT64 *, UINT8 *);
typedef EFI_STATUS(EFIAPI *SUBMIT_COMMAND)(TCG2 *, UINT32, UINT8 *, UINT32, UINT8 *);
typedef EFI_STATUS(EFIAPI *GET_ACTIVE_PCR_BANKS)(TCG2 *, UINT32 *);
struct TCG2 {
  void *GetCapability;
  GET_EVENT_LOG GetEventLog;
  void *HashLogExtendEvent;
  SUBMIT_COMMAND SubmitCommand;
  GET_ACTIVE_PCR_BANKS GetActivePcrBanks;
};

static EFI_GUID Tcg2Guid = {0x607f766c, 0x7455, 0x42be, {0x93, 0x0b, 0xe4, 0xd7, 0x6d, 0xb2, 0x72, 0x0f}};

static inline void outb(UINT16 port, UINT8 v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
static inline UINT8 inb(UINT16 port) {
  UINT8 v;
  __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
static void putc_(char c) {
  for (int i = 0; i < 100000 && !(inb(0x3FD) & 0x20); i++) {}
  outb(0x3F8, (UINT8)c);
}
static void puts_(const char *s) { while (*s) putc_(*s++); }
static void puthex(UINT64 v) {
  static const char hex[] = "0123456789abcdef";
  for (int i = 60; i >= 0; i -= 4) putc_(hex[(v >> i) & 15]);
}

static void base64(const UINT8 *p, UINT64 n) {
  static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  UINT64 col = 0;
  for (UINT64 i = 0; i < n; i += 3) {
    UINT32 b = (UINT32)p[i] << 16;
    if (i + 1 < n) b |= (UINT32)p[i + 1] << 8;
    if (i + 2 < n) b |= p[i + 2];
    putc_(t[(b >> 18) & 63]);
    putc_(t[(b >> 12) & 63]);
    putc_(i + 1 < n ? t[(b >> 6) & 63] : '=');
    putc_(i + 2 < n ? t[b & 63] : '=');
    if ((col += 4) >= 76) { puts_("\r\n"); col = 0; }
  }
  if (col) puts_("\r\n");
}

static UINT32 rd32(const UINT8 *p) { return p[0] | p[1] << 8 | p[2] << 16 | (UINT32)p[3] << 24; }
static UINT16 rd16(const UINT8 *p) { return (UINT16)(p[0] | p[1] << 8); }

static UINT32 algSize(UINT16 alg) {
  switch (alg) {
    case 0x0004: return 20;
    case 0x000b: case 0x0012: case 0x0027: return 32;
    case 0x000c: case 0x0028: return 48;
    case 0x000d: case 0x0029: return 64;
    default: return 0;
  }
}

/* Size of the last entry, which GetEventLog locates but does not size. */
static UINT64 lastEntrySize(UINT32 format, const UINT8 *e) {
  if (format == 1) return 32 + (UINT64)rd32(e + 28); /* TCG_PCClientPCREvent */
  UINT32 count = rd32(e + 8);                       /* TCG_PCR_EVENT2 */
  const UINT8 *p = e + 12;
  for (UINT32 i = 0; i < count; i++) {
    UINT32 n = algSize(rd16(p));
    if (!n) return 0;
    p += 2 + n;
  }
  return (UINT64)(p - e) + 4 + rd32(p);
}

static void dump(TCG2 *tcg2, UINT32 format, const char *name) {
  UINT64 loc = 0, last = 0;
  UINT8 truncated = 0;
  EFI_STATUS s = tcg2->GetEventLog(tcg2, format, &loc, &last, &truncated);
  puts_("\r\nBULWARK-EVENTLOG format=");
  puts_(name);
  puts_(" status=");
  puthex(s);
  puts_(" truncated=");
  putc_(truncated ? '1' : '0');
  puts_("\r\n");
  if (s != 0 || loc == 0) return;
  UINT64 len = last == 0 ? 0 : last - loc + lastEntrySize(format, (const UINT8 *)last);
  puts_("-----BEGIN BULWARK EVENTLOG ");
  puts_(name);
  puts_("-----\r\n");
  base64((const UINT8 *)loc, len);
  puts_("-----END BULWARK EVENTLOG ");
  puts_(name);
  puts_("-----\r\n");
}

/*
 * Reads one PCR with TPM2_PCR_Read (TPM 2.0 Library Part 3, section 22.4) through
 * EFI_TCG2_PROTOCOL.SubmitCommand and prints "BULWARK-PCR <alg> <index> <hex digest>".
 */
static void readPcr(TCG2 *tcg2, UINT16 alg, UINT32 pcr) {
  UINT8 cmd[20] = {0x80, 0x01, 0, 0, 0, 20, 0, 0, 0x01, 0x7e, 0, 0, 0, 1, (UINT8)(alg >> 8), (UINT8)alg, 3, 0, 0, 0};
  cmd[17 + pcr / 8] = (UINT8)(1u << (pcr % 8));
  UINT8 rsp[128];
  for (int i = 0; i < 128; i++) rsp[i] = 0;
  EFI_STATUS s = tcg2->SubmitCommand(tcg2, sizeof cmd, cmd, sizeof rsp, rsp);
  puts_("BULWARK-PCR ");
  puthex(alg);
  puts_(" ");
  puthex(pcr);
  puts_(" ");
  UINT32 rc = (UINT32)rsp[6] << 24 | (UINT32)rsp[7] << 16 | (UINT32)rsp[8] << 8 | rsp[9];
  /* header 10, pcrUpdateCounter 4, TPML_PCR_SELECTION 4+2+1+3, TPML_DIGEST count 4, TPM2B size 2 */
  UINT32 count = (UINT32)rsp[24] << 24 | (UINT32)rsp[25] << 16 | (UINT32)rsp[26] << 8 | rsp[27];
  UINT32 size = (UINT32)rsp[28] << 8 | rsp[29];
  if (s != 0 || rc != 0 || count != 1 || size > 64) {
    puts_("error ");
    puthex(s);
    puts_(" ");
    puthex(rc);
  } else {
    static const char hex[] = "0123456789abcdef";
    for (UINT32 i = 0; i < size; i++) {
      putc_(hex[rsp[30 + i] >> 4]);
      putc_(hex[rsp[30 + i] & 15]);
    }
  }
  puts_("\r\n");
}

static void readPcrs(TCG2 *tcg2) {
  static const UINT16 algs[5] = {0x0004, 0x000b, 0x000c, 0x000d, 0x0012};
  UINT32 banks = 0;
  EFI_STATUS s = tcg2->GetActivePcrBanks(tcg2, &banks);
  puts_("BULWARK-PCR-BANKS status=");
  puthex(s);
  puts_(" banks=");
  puthex(banks);
  puts_("\r\n");
  if (s != 0) return;
  for (int b = 0; b < 5; b++) {
    if (!(banks & (1u << b))) continue;
    for (UINT32 pcr = 0; pcr < 24; pcr++) readPcr(tcg2, algs[b], pcr);
  }
}

EFI_STATUS EFIAPI efi_main(void *image, EFI_SYSTEM_TABLE *st) {
  (void)image;
  TCG2 *tcg2 = 0;
  LOCATE_PROTOCOL locate = (LOCATE_PROTOCOL)st->BootServices[3 + 37];
  EFI_STATUS s = locate(&Tcg2Guid, 0, (void **)&tcg2);
  puts_("\r\nBULWARK-DUMPLOG tcg2=");
  puthex(s);
  puts_("\r\n");
  if (s == 0 && tcg2) {
    dump(tcg2, 2, "TCG_2");
    dump(tcg2, 1, "TCG_1_2");
    readPcrs(tcg2);
  }
  puts_("BULWARK-DUMPLOG done\r\n");
  RESET_SYSTEM reset = (RESET_SYSTEM)st->RuntimeServices[3 + 10];
  reset(2 /* EfiResetShutdown */, 0, 0, 0);
  return 0;
}

typedef unsigned long long UINTN;
typedef struct { char hdr[24]; void *fw_vendor; unsigned rev; void *conin_h; void *conin; void *conout_h; struct { void *reset; UINTN (*output)(void *, const unsigned short *); } *conout; } ST;
static const unsigned short msg[] = { 'B','u','l','w','a','r','k',' ','t','e','s','t',' ','v','e','c','t','o','r','\r','\n',0 };
UINTN efi_main(void *image, ST *st) { st->conout->output(st->conout, msg); return 0; }

/*
 * Shared declarations of the libfido2 peer: a client that drives a fidolab key over its report
 * socket with real libfido2 calls and prints one JSON row per operation on stdout.
 */
#ifndef FIDOLAB_LIBFIDO2_H
#define FIDOLAB_LIBFIDO2_H

#include <stdbool.h>
#include <stddef.h>
#include <fido.h>
#include <fido/eddsa.h>
#include <fido/es256.h>

#define MAX_CREDS 16
#define MAX_ID 1024

/* Features the persona claims; the Go side derives them from the persona, not from getInfo,
 * so a key that wrongly hides a feature fails instead of passing as "unsupported". */
enum {
	F_CTAP2 = 1 << 0, F_PIN = 1 << 1, F_RK = 1 << 2, F_CREDPROT = 1 << 3, F_HMAC = 1 << 4,
	F_CREDMGMT = 1 << 5, F_LARGEBLOB = 1 << 6, F_CONFIG = 1 << 7, F_BIO = 1 << 8, F_U2F = 1 << 9,
	F_EDDSA = 1 << 10, F_PERMS = 1 << 11, F_MCUVNR = 1 << 12,
};

struct cred {
	unsigned char id[MAX_ID];
	size_t idlen;
	int type; /* COSE_ES256 or COSE_EDDSA */
	unsigned char pk[128];
	size_t pklen;
	char rp[64];
	int prot;
	bool rk;
	unsigned char blobkey[32];
	bool has_blobkey;
	bool flags_ed;    /* authData at makeCredential carried extension outputs */
	bool ext_ignored; /* the key ignored a requested extension (libfido2 then rejects the attestation) */
};

struct run {
	const char *sock;
	const char *persona;
	const char *aaguid_hex; /* expected AAGUID, 32 hex digits */
	const char *versions;   /* expected versions, comma separated */
	unsigned features;
	int min_pin;
	int rk_capacity;
	const char *pin; /* current PIN, NULL while none is set */
	bool force_u2f; /* open connections in CTAP1/U2F mode */
	struct cred creds[MAX_CREDS];
	int ncreds;
};

/* Result reporting. */
void row(const struct run *, const char *op, const char *result, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void pass(const struct run *, const char *op, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void fail(const struct run *, const char *op, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* absent reports an operation on a feature the persona lacks: unsupported when libfido2 returned one
 * of the listed codes (terminated by FIDO_OK), fail otherwise. */
void absent(const struct run *, const char *op, int r, const int *want);
bool has(const struct run *, unsigned f);
void watchdog(const char *op, unsigned seconds);

fido_dev_t *open_dev(const struct run *, bool force_u2f);
void close_dev(fido_dev_t **);
void random_bytes(unsigned char *, size_t);
int verify_assert(const fido_assert_t *, size_t idx, const struct cred *);
const struct cred *find_cred(const struct run *, const unsigned char *id, size_t len);

/* Operation groups. */
void op_get_info(struct run *);
void op_pin(struct run *);
void op_make_creds(struct run *);
void op_assertions(struct run *);
void op_hmac_secret(struct run *);
void op_u2f(struct run *);
void op_credman(struct run *);
void op_largeblob(struct run *);
void op_config(struct run *);
void op_bio(struct run *);
void op_reset(struct run *);

#endif

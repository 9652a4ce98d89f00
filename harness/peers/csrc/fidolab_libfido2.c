/*
 * fidolab_libfido2: drives a fidolab key over its report socket with real libfido2 operations and
 * prints one JSON row per operation on stdout ({"client","operation","persona","result","detail"}).
 *
 * usage: fidolab_libfido2 --socket PATH --persona NAME --mode main|reset [--aaguid HEX]
 *        [--versions V,V] [--features f,f] [--min-pin N] [--rk-capacity N]
 *
 * The socket carries raw 64-byte CTAPHID reports (docs/socket-transport.md); libfido2 is plugged
 * into it with fido_dev_set_io_functions.
 */
#include "fidolab_libfido2.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CLIENT "libfido2"
#define OP_TIMEOUT_MS 15000

/* ---- socket I/O for libfido2 ---- */

static void *sock_open(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int *fd;

	if (strlen(path) >= sizeof sa.sun_path)
		return NULL;
	strcpy(sa.sun_path, path);
	if ((fd = malloc(sizeof *fd)) == NULL)
		return NULL;
	if ((*fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		free(fd);
		return NULL;
	}
	if (connect(*fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		close(*fd);
		free(fd);
		return NULL;
	}
	return fd;
}

static void sock_close(void *h)
{
	close(*(int *)h);
	free(h);
}

static int sock_write(void *h, const unsigned char *buf, size_t len)
{
	size_t done = 0;

	/* libfido2 prefixes the report ID (0); the socket wants the bare 64-byte report. */
	if (len != 65 || buf[0] != 0)
		return -1;
	while (done < 64) {
		ssize_t n = write(*(int *)h, buf + 1 + done, 64 - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return (int)len;
}

static int sock_read(void *h, unsigned char *buf, size_t len, int ms)
{
	size_t done = 0;
	int fd = *(int *)h;

	if (len < 64)
		return -1;
	if (ms < 0 || ms > OP_TIMEOUT_MS)
		ms = OP_TIMEOUT_MS; /* never wait forever: a silent key must fail, not hang */
	while (done < 64) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r = poll(&p, 1, done == 0 ? ms : 1000);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		ssize_t n = read(fd, buf + done, 64 - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 64;
}

static const fido_dev_io_t sock_io = {sock_open, sock_close, sock_read, sock_write};

fido_dev_t *open_dev(const struct run *run, bool force_u2f)
{
	fido_dev_t *dev = fido_dev_new();

	if (dev == NULL)
		return NULL;
	if (fido_dev_set_io_functions(dev, &sock_io) != FIDO_OK ||
	    fido_dev_set_timeout(dev, OP_TIMEOUT_MS) != FIDO_OK ||
	    fido_dev_open(dev, run->sock) != FIDO_OK) {
		fido_dev_free(&dev);
		return NULL;
	}
	if (force_u2f)
		fido_dev_force_u2f(dev);
	return dev;
}

void close_dev(fido_dev_t **dev)
{
	if (*dev == NULL)
		return;
	fido_dev_close(*dev);
	fido_dev_free(dev);
}

/* ---- rows ---- */

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void vrow(const struct run *run, const char *op, const char *result, const char *fmt, va_list ap)
{
	char detail[512];

	vsnprintf(detail, sizeof detail, fmt, ap);
	printf("{\"client\":\"" CLIENT "\",\"operation\":");
	json_str(op);
	printf(",\"persona\":");
	json_str(run->persona);
	printf(",\"result\":\"%s\",\"detail\":", result);
	json_str(detail);
	printf("}\n");
	fflush(stdout);
}

void row(const struct run *run, const char *op, const char *result, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vrow(run, op, result, fmt, ap);
	va_end(ap);
}

void pass(const struct run *run, const char *op, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vrow(run, op, "pass", fmt, ap);
	va_end(ap);
}

void fail(const struct run *run, const char *op, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vrow(run, op, "fail", fmt, ap);
	va_end(ap);
}

/* What libfido2 returns when it sends CTAP2 to a U2F-only key: the key answers CTAPHID_ERROR
 * INVALID_CMD, which libfido2 reports as a receive error (FIDO_ERR_RX) or refuses up front. */
static const int no_ctap2[] = {FIDO_ERR_RX, FIDO_ERR_INVALID_COMMAND, FIDO_ERR_UNSUPPORTED_OPTION,
    FIDO_ERR_INVALID_ARGUMENT, FIDO_ERR_INTERNAL, FIDO_OK};

static struct timespec op_started;

static double since_start(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - op_started.tv_sec) + (double)(now.tv_nsec - op_started.tv_nsec) / 1e9;
}

void absent(const struct run *run, const char *op, int r, const int *want)
{
	/* FIDO_ERR_RX also means a timeout: only a prompt one is the key saying "no". */
	if (r == FIDO_ERR_RX && since_start() > 2.0) {
		fail(run, op, "FIDO_ERR_RX after %.1f s: the key stayed silent instead of refusing", since_start());
		return;
	}
	if (!has(run, F_CTAP2))
		for (const int *w = no_ctap2; *w != FIDO_OK; w++)
			if (r == *w) {
				row(run, op, "unsupported", "no CTAP2: %s", fido_strerr(r));
				return;
			}
	for (; *want != FIDO_OK; want++) {
		if (r == *want) {
			row(run, op, "unsupported", "%s", fido_strerr(r));
			return;
		}
	}
	fail(run, op, "feature absent from persona, but libfido2 returned %s (%d)", fido_strerr(r), r);
}

bool has(const struct run *run, unsigned f) { return (run->features & f) == f; }

/* The watchdog turns a hang that escapes libfido2's own timeouts into a failed row. */
static const char *watched_op;
static const char *watched_persona;

static void on_alarm(int sig)
{
	char buf[256];
	(void)sig;
	int n = snprintf(buf, sizeof buf,
	    "{\"client\":\"" CLIENT "\",\"operation\":\"%s\",\"persona\":\"%s\",\"result\":\"fail\","
	    "\"detail\":\"watchdog: operation hung\"}\n",
	    watched_op ? watched_op : "?", watched_persona ? watched_persona : "?");
	if (n > 0)
		(void)!write(STDOUT_FILENO, buf, (size_t)n);
	_exit(3);
}

void watchdog(const char *op, unsigned seconds)
{
	watched_op = op;
	clock_gettime(CLOCK_MONOTONIC, &op_started);
	alarm(seconds);
}

void random_bytes(unsigned char *p, size_t n)
{
	FILE *f = fopen("/dev/urandom", "rb");
	if (f == NULL || fread(p, 1, n, f) != n) {
		fprintf(stderr, "fidolab_libfido2: /dev/urandom unreadable\n");
		exit(2);
	}
	fclose(f);
}

const struct cred *find_cred(const struct run *run, const unsigned char *id, size_t len)
{
	for (int i = 0; i < run->ncreds; i++)
		if (run->creds[i].idlen == len && memcmp(run->creds[i].id, id, len) == 0)
			return &run->creds[i];
	return NULL;
}

int verify_assert(const fido_assert_t *a, size_t idx, const struct cred *c)
{
	int r;

	if (c->type == COSE_EDDSA) {
		eddsa_pk_t *pk = eddsa_pk_new();
		if ((r = eddsa_pk_from_ptr(pk, c->pk, c->pklen)) == FIDO_OK)
			r = fido_assert_verify(a, idx, COSE_EDDSA, pk);
		eddsa_pk_free(&pk);
		return r;
	}
	es256_pk_t *pk = es256_pk_new();
	if ((r = es256_pk_from_ptr(pk, c->pk, c->pklen)) == FIDO_OK)
		r = fido_assert_verify(a, idx, COSE_ES256, pk);
	es256_pk_free(&pk);
	return r;
}

/* ---- argv ---- */

static const struct {
	const char *name;
	unsigned bit;
} feature_names[] = {
    {"ctap2", F_CTAP2}, {"pin", F_PIN}, {"rk", F_RK}, {"credProtect", F_CREDPROT},
    {"hmac-secret", F_HMAC}, {"credMgmt", F_CREDMGMT}, {"largeBlobs", F_LARGEBLOB},
    {"config", F_CONFIG}, {"bio", F_BIO}, {"u2f", F_U2F}, {"eddsa", F_EDDSA},
    {"pinUvAuthToken", F_PERMS}, {"makeCredUvNotRqd", F_MCUVNR},
};

static int parse_features(const char *s, unsigned *out)
{
	char buf[512], *tok, *save = NULL;

	if (strlen(s) >= sizeof buf)
		return -1;
	strcpy(buf, s);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		size_t i;
		for (i = 0; i < sizeof feature_names / sizeof feature_names[0]; i++)
			if (strcmp(tok, feature_names[i].name) == 0)
				break;
		if (i == sizeof feature_names / sizeof feature_names[0]) {
			fprintf(stderr, "fidolab_libfido2: unknown feature %s\n", tok);
			return -1;
		}
		*out |= feature_names[i].bit;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct run run = {.min_pin = 4, .rk_capacity = 0, .aaguid_hex = "", .versions = ""};
	const char *mode = "main";

	for (int i = 1; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];
		if (strcmp(k, "--socket") == 0)
			run.sock = v;
		else if (strcmp(k, "--persona") == 0)
			run.persona = v;
		else if (strcmp(k, "--mode") == 0)
			mode = v;
		else if (strcmp(k, "--aaguid") == 0)
			run.aaguid_hex = v;
		else if (strcmp(k, "--versions") == 0)
			run.versions = v;
		else if (strcmp(k, "--min-pin") == 0)
			run.min_pin = atoi(v);
		else if (strcmp(k, "--rk-capacity") == 0)
			run.rk_capacity = atoi(v);
		else if (strcmp(k, "--features") == 0) {
			if (parse_features(v, &run.features) != 0)
				return 2;
		} else {
			fprintf(stderr, "fidolab_libfido2: unknown flag %s\n", k);
			return 2;
		}
	}
	if (run.sock == NULL || run.persona == NULL) {
		fprintf(stderr, "usage: fidolab_libfido2 --socket PATH --persona NAME [--mode main|reset] ...\n");
		return 2;
	}
	watched_persona = run.persona;
	signal(SIGALRM, on_alarm);
	signal(SIGPIPE, SIG_IGN);
	fido_init(getenv("FIDOLAB_LIBFIDO2_DEBUG") ? FIDO_DEBUG : 0);

	if (strcmp(mode, "reset") == 0) {
		op_reset(&run);
		return 0;
	}
	op_get_info(&run);
	op_pin(&run);
	op_make_creds(&run);
	op_assertions(&run);
	op_hmac_secret(&run);
	op_credman(&run);
	op_largeblob(&run);
	op_config(&run);
	op_bio(&run);
	op_u2f(&run);
	return 0;
}

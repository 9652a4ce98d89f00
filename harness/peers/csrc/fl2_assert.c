/*
 * getAssertion (allowList, discoverable, UV via PIN, credProtect), hmac-secret and CTAP1/U2F
 * through libfido2. Every assertion signature is verified against the credential's public key.
 */
#include "fidolab_libfido2.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RP_NONRK "nonrk.fidolab.test"
#define RP_RK "rk.fidolab.test"
#define RP_HMAC "hmac.fidolab.test"

static const char *pin_for(const struct run *run) { return has(run, F_PIN) ? run->pin : NULL; }

/* uv_pin is the PIN for an operation that asks for UV: a key without PIN support gets one anyway,
 * so the row shows how libfido2 fails rather than an operation without UV. */
static const char *uv_pin(const struct run *run) { return run->pin ? run->pin : "fidolab-no-pin"; }

/* get runs one getAssertion; allow may be NULL (discoverable). The caller frees *out. */
static int get(const struct run *run, const char *rp, const struct cred **allow, int nallow, const char *pin,
    const unsigned char *salt, size_t saltlen, fido_assert_t **out)
{
	unsigned char cdh[32];
	int r = FIDO_OK;
	fido_assert_t *a = fido_assert_new();
	fido_dev_t *dev = open_dev(run, run->force_u2f);

	random_bytes(cdh, sizeof cdh);
	if ((r = fido_assert_set_clientdata_hash(a, cdh, sizeof cdh)) != FIDO_OK ||
	    (r = fido_assert_set_rp(a, rp)) != FIDO_OK)
		goto out;
	for (int i = 0; i < nallow; i++)
		if ((r = fido_assert_allow_cred(a, allow[i]->id, allow[i]->idlen)) != FIDO_OK)
			goto out;
	if (salt && ((r = fido_assert_set_extensions(a, FIDO_EXT_HMAC_SECRET)) != FIDO_OK ||
	    (r = fido_assert_set_hmac_salt(a, salt, saltlen)) != FIDO_OK))
		goto out;
	r = dev ? fido_dev_get_assert(dev, a, pin) : FIDO_ERR_TX;
out:
	close_dev(&dev);
	*out = a;
	return r;
}

/* check verifies every assertion in a; on a mismatch it writes the fail row and returns false. */
static bool check(const struct run *run, const char *op, const fido_assert_t *a, const struct cred **allow,
    int nallow, bool want_uv)
{
	for (size_t i = 0; i < fido_assert_count(a); i++) {
		const struct cred *k;
		if (fido_assert_id_len(a, i) == 0 && nallow == 1)
			k = allow[0]; /* CTAP 2.0 lets the key omit the id of a single-entry allowList */
		else
			k = find_cred(run, fido_assert_id_ptr(a, i), fido_assert_id_len(a, i));
		if (k == NULL) {
			fail(run, op, "assertion %zu names a credential that was never made", i);
			return false;
		}
		int r = verify_assert(a, i, k);
		if (r != FIDO_OK) {
			fail(run, op, "assertion %zu signature does not verify: %s", i, fido_strerr(r));
			return false;
		}
		uint8_t fl = fido_assert_flags(a, i);
		if (!(fl & CTAP_AUTHDATA_USER_PRESENT) || (want_uv != !!(fl & CTAP_AUTHDATA_USER_VERIFIED))) {
			fail(run, op, "assertion %zu flags 0x%02x (want UP%s)", i, fl, want_uv ? "+UV" : " without UV");
			return false;
		}
	}
	return true;
}

static const struct cred *first(const struct run *run, const char *rp, bool rk, int prot)
{
	for (int i = 0; i < run->ncreds; i++) {
		const struct cred *k = &run->creds[i];
		if (strcmp(k->rp, rp) == 0 && k->rk == rk && k->prot == prot && k->type == COSE_ES256)
			return k;
	}
	return NULL;
}

static void allow_list(struct run *run)
{
	const char *op = "getAssertion allowList";
	const struct cred *k = first(run, RP_NONRK, false, 0);
	fido_assert_t *a = NULL;
	int r;

	watchdog(op, 30);
	if (k == NULL) {
		fail(run, op, "no credential was made");
		return;
	}
	r = get(run, RP_NONRK, &k, 1, NULL, NULL, 0, &a);
	if (r != FIDO_OK)
		fail(run, op, "%s", fido_strerr(r));
	else if (fido_assert_count(a) != 1)
		fail(run, op, "%zu assertions, want 1", fido_assert_count(a));
	else if (check(run, op, a, &k, 1, false)) {
		uint32_t c1 = fido_assert_sigcount(a, 0);
		fido_assert_free(&a);
		r = get(run, RP_NONRK, &k, 1, NULL, NULL, 0, &a);
		if (r != FIDO_OK || fido_assert_count(a) != 1 || !check(run, op, a, &k, 1, false))
			fail(run, op, "second assertion: %s", fido_strerr(r));
		else if (fido_assert_sigcount(a, 0) <= c1 && c1 != 0)
			fail(run, op, "signature counter did not increase (%u then %u)", c1, fido_assert_sigcount(a, 0));
		else
			pass(run, op, "signature verified twice, counter %u -> %u", c1, fido_assert_sigcount(a, 0));
	}
	fido_assert_free(&a);

	if (first(run, RP_NONRK, false, 0) == NULL || run->force_u2f)
		return;
	op = "getAssertion allowList, UV via PIN";
	watchdog(op, 30);
	r = get(run, RP_NONRK, &k, 1, uv_pin(run), NULL, 0, &a);
	if (!has(run, F_PIN)) {
		static const int want[] = {FIDO_ERR_UNSUPPORTED_OPTION, FIDO_ERR_INVALID_COMMAND, FIDO_OK};
		absent(run, op, r, want);
	} else if (r != FIDO_OK)
		fail(run, op, "%s", fido_strerr(r));
	else if (check(run, op, a, &k, 1, true))
		pass(run, op, "signature verified, UV flag set");
	fido_assert_free(&a);
}

static void discoverable(struct run *run)
{
	int all = 0, without_uv = 0, r;
	fido_assert_t *a = NULL;
	const char *op = "getAssertion discoverable";

	for (int i = 0; i < run->ncreds; i++) {
		if (strcmp(run->creds[i].rp, RP_RK) != 0 || !run->creds[i].rk)
			continue;
		all++;
		without_uv += run->creds[i].prot <= 1;
	}
	watchdog(op, 30);
	r = get(run, RP_RK, NULL, 0, NULL, NULL, 0, &a);
	if (!has(run, F_RK)) {
		static const int want[] = {FIDO_ERR_UNSUPPORTED_OPTION, FIDO_ERR_INVALID_COMMAND, FIDO_OK};
		absent(run, op, r, want);
		fido_assert_free(&a);
		return;
	}
	if (r != FIDO_OK)
		fail(run, op, "%s", fido_strerr(r));
	else if ((int)fido_assert_count(a) != without_uv)
		fail(run, op, "%zu credentials without UV, want %d (credProtect 2 and 3 hidden)", fido_assert_count(a),
		    without_uv);
	else if (check(run, op, a, NULL, 0, false))
		pass(run, op, "%d of %d credentials without UV (credProtect honoured), all signatures verified",
		    without_uv, all);
	fido_assert_free(&a);

	op = "getAssertion discoverable, UV via PIN";
	watchdog(op, 30);
	r = get(run, RP_RK, NULL, 0, pin_for(run), NULL, 0, &a);
	if (r != FIDO_OK)
		fail(run, op, "%s", fido_strerr(r));
	else if ((int)fido_assert_count(a) != all)
		fail(run, op, "%zu credentials, want %d", fido_assert_count(a), all);
	else if (check(run, op, a, NULL, 0, true))
		pass(run, op, "all %d credentials, UV flag set, all signatures verified", all);
	fido_assert_free(&a);

	op = "getAssertion credProtect=3 without UV";
	watchdog(op, 30);
	const struct cred *k = first(run, RP_RK, true, 3);
	if (!has(run, F_CREDPROT)) {
		row(run, op, "unsupported", "persona has no credProtect; no such credential was made");
		return;
	}
	if (k == NULL) {
		fail(run, op, "no credProtect=3 credential was made");
		return;
	}
	r = get(run, RP_RK, &k, 1, NULL, NULL, 0, &a);
	if (r == FIDO_ERR_NO_CREDENTIALS)
		pass(run, op, "NO_CREDENTIALS even with the id in allowList");
	else
		fail(run, op, "want NO_CREDENTIALS, got %s", fido_strerr(r));
	fido_assert_free(&a);
}

void op_assertions(struct run *run)
{
	allow_list(run);
	discoverable(run);
}

/* hmac fetches the hmac-secret output for salt; returns its length (0 on any error, set in *r). */
static size_t hmac(struct run *run, const struct cred *k, const unsigned char *salt, size_t saltlen,
    const char *pin, unsigned char out[64], int *r, const char *op)
{
	fido_assert_t *a = NULL;
	size_t n = 0;

	*r = get(run, RP_HMAC, &k, 1, pin, salt, saltlen, &a);
	if (*r == FIDO_OK && !has(run, F_HMAC) && fido_assert_hmac_secret_len(a, 0) == 0)
		fido_assert_set_extensions(a, 0); /* as at makeCredential: verify the signature itself */
	if (*r == FIDO_OK && fido_assert_count(a) == 1 && check(run, op, a, &k, 1, pin != NULL)) {
		n = fido_assert_hmac_secret_len(a, 0);
		if (n > 64)
			n = 0;
		memcpy(out, fido_assert_hmac_secret_ptr(a, 0), n);
	} else if (*r == FIDO_OK) {
		*r = FIDO_ERR_INVALID_SIG; /* check() already wrote the row */
	}
	fido_assert_free(&a);
	return n;
}

void op_hmac_secret(struct run *run)
{
	unsigned char salt[64], o1[64], o2[64], o3[64], o4[64];
	const struct cred *k = NULL;
	int r;
	const char *op = "getAssertion hmac-secret, 1 salt";

	for (int i = 0; i < run->ncreds; i++)
		if (strcmp(run->creds[i].rp, RP_HMAC) == 0)
			k = &run->creds[i];
	watchdog(op, 60);
	if (k == NULL) {
		if (has(run, F_CTAP2))
			fail(run, op, "no hmac-secret credential was made");
		else
			row(run, op, "unsupported", "no CTAP2: hmac-secret needs CTAP2");
		return;
	}
	random_bytes(salt, sizeof salt);
	size_t n1 = hmac(run, k, salt, 32, NULL, o1, &r, op);
	if (!has(run, F_HMAC)) {
		if (r == FIDO_OK && n1 == 0)
			row(run, op, "unsupported", "extension ignored, no output; fido_assert_verify rejects that "
			    "(INVALID_PARAM), signature verified directly");
		else if (r == FIDO_OK)
			fail(run, op, "persona lacks hmac-secret but returned %zu output bytes", n1);
		else if (r != FIDO_ERR_INVALID_SIG) {
			static const int want[] = {FIDO_ERR_UNSUPPORTED_EXTENSION, FIDO_OK};
			absent(run, op, r, want);
		}
		return;
	}
	if (r != FIDO_OK) {
		if (r != FIDO_ERR_INVALID_SIG)
			fail(run, op, "%s", fido_strerr(r));
		return;
	}
	size_t n2 = hmac(run, k, salt, 32, NULL, o2, &r, op);
	if (r != FIDO_OK)
		return;
	if (n1 != 32 || n2 != 32 || memcmp(o1, o2, 32) != 0)
		fail(run, op, "outputs of %zu and %zu bytes, equal=%d; want the same 32 bytes twice", n1, n2,
		    n1 == n2 && memcmp(o1, o2, n1) == 0);
	else
		pass(run, op, "32-byte output, identical across two assertions");

	op = "getAssertion hmac-secret, 2 salts";
	watchdog(op, 30);
	size_t n3 = hmac(run, k, salt, 64, NULL, o3, &r, op);
	if (r != FIDO_OK) {
		if (r != FIDO_ERR_INVALID_SIG)
			fail(run, op, "%s", fido_strerr(r));
	} else if (n3 != 64 || memcmp(o3, o1, 32) != 0 || memcmp(o3, o3 + 32, 32) == 0)
		fail(run, op, "%zu-byte output; first half must equal the 1-salt output, halves must differ", n3);
	else
		pass(run, op, "64-byte output; first half equals the 1-salt output");

	op = "getAssertion hmac-secret, UV via PIN";
	watchdog(op, 30);
	size_t n4 = hmac(run, k, salt, 32, pin_for(run), o4, &r, op);
	if (r != FIDO_OK) {
		if (r != FIDO_ERR_INVALID_SIG)
			fail(run, op, "%s", fido_strerr(r));
	} else if (n4 != 32 || memcmp(o4, o1, 32) == 0)
		fail(run, op, "%zu-byte output; with UV it must differ from the output without UV", n4);
	else
		pass(run, op, "32-byte output, differs from the output without UV (CredRandomWithUV)");
}

/* op_u2f drives CTAP1 (register + authenticate) with libfido2 forced to U2F, as old hosts do. */
void op_u2f(struct run *run)
{
	const char *op = "U2F register+authenticate";
	int saved = run->ncreds;
	fido_cred_t *c = fido_cred_new();
	fido_assert_t *a = NULL;
	unsigned char cdh[32], uid[16];
	int r;

	watchdog(op, 30);
	run->force_u2f = true;
	fido_dev_t *dev = open_dev(run, true);
	random_bytes(cdh, sizeof cdh);
	random_bytes(uid, sizeof uid);
	fido_cred_set_type(c, COSE_ES256);
	fido_cred_set_clientdata_hash(c, cdh, sizeof cdh);
	fido_cred_set_rp(c, RP_NONRK, NULL);
	fido_cred_set_user(c, uid, sizeof uid, "u2f", NULL, NULL);
	r = dev ? fido_dev_make_cred(dev, c, NULL) : FIDO_ERR_TX;
	close_dev(&dev);
	if (!has(run, F_U2F)) {
		static const int want[] = {FIDO_ERR_INVALID_COMMAND, FIDO_ERR_RX, FIDO_OK};
		absent(run, op, r, want);
		goto out;
	}
	if (r != FIDO_OK) {
		fail(run, op, "register: %s", fido_strerr(r));
		goto out;
	}
	if ((r = fido_cred_verify(c)) != FIDO_OK || strcmp(fido_cred_fmt(c), "fido-u2f") != 0) {
		fail(run, op, "register attestation (%s): %s", fido_cred_fmt(c), fido_strerr(r));
		goto out;
	}
	if (run->ncreds >= MAX_CREDS) {
		fail(run, op, "too many credentials for the client's table");
		goto out;
	}
	struct cred *k = &run->creds[run->ncreds++];
	memset(k, 0, sizeof *k);
	memcpy(k->id, fido_cred_id_ptr(c), k->idlen = fido_cred_id_len(c));
	memcpy(k->pk, fido_cred_pubkey_ptr(c), k->pklen = fido_cred_pubkey_len(c));
	k->type = COSE_ES256;
	const struct cred *kc = k;
	r = get(run, RP_NONRK, &kc, 1, NULL, NULL, 0, &a);
	if (r != FIDO_OK)
		fail(run, op, "authenticate: %s", fido_strerr(r));
	else if (fido_assert_count(a) == 1 && check(run, op, a, &kc, 1, false))
		pass(run, op, "fido-u2f attestation and U2F signature verified");
out:
	run->force_u2f = false;
	run->ncreds = saved;
	fido_assert_free(&a);
	fido_cred_free(&c);
}

/*
 * getInfo, PIN, makeCredential, getAssertion and hmac-secret through libfido2; every success is
 * checked (attestation and assertion signatures verified, counts and outputs compared).
 */
#include "fidolab_libfido2.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PIN1 "fidolab-pin-1"
#define PIN2 "fidolab-pin-2"

#define RP_NONRK "nonrk.fidolab.test"
#define RP_RK "rk.fidolab.test"
#define RP_HMAC "hmac.fidolab.test"
#define RP_BLOB "blob.fidolab.test"

static const int not_there[] = {FIDO_ERR_INVALID_COMMAND, FIDO_ERR_UNSUPPORTED_OPTION, FIDO_OK};

static const char *pin_for(const struct run *run) { return has(run, F_PIN) ? run->pin : NULL; }

static bool hex_eq(const char *hex, const unsigned char *b, size_t n)
{
	char buf[3];
	if (strlen(hex) != 2 * n)
		return false;
	for (size_t i = 0; i < n; i++) {
		snprintf(buf, sizeof buf, "%02x", b[i]);
		if (strncmp(buf, hex + 2 * i, 2) != 0)
			return false;
	}
	return true;
}

static int opt_value(const fido_cbor_info_t *ci, const char *name)
{
	char **names = fido_cbor_info_options_name_ptr(ci);
	const bool *vals = fido_cbor_info_options_value_ptr(ci);
	for (size_t i = 0; i < fido_cbor_info_options_len(ci); i++)
		if (strcmp(names[i], name) == 0)
			return vals[i] ? 1 : 0;
	return -1; /* absent */
}

static bool versions_match(const fido_cbor_info_t *ci, const char *want)
{
	char **v = fido_cbor_info_versions_ptr(ci);
	size_t n = fido_cbor_info_versions_len(ci), seen = 0;
	for (size_t i = 0; i < n; i++) {
		char needle[64];
		snprintf(needle, sizeof needle, ",%s,", v[i]);
		char hay[512];
		snprintf(hay, sizeof hay, ",%s,", want);
		if (strstr(hay, needle) == NULL)
			return false;
		seen++;
	}
	/* every expected version must be present too: count the commas */
	size_t nwant = *want ? 1 : 0;
	for (const char *p = want; *p; p++)
		nwant += *p == ',';
	return seen == nwant;
}

/* get_info fetches getInfo on a fresh connection; the caller frees it. */
static fido_cbor_info_t *get_info(const struct run *run, int *r)
{
	fido_dev_t *dev = open_dev(run, false);
	fido_cbor_info_t *ci = fido_cbor_info_new();
	*r = dev ? fido_dev_get_cbor_info(dev, ci) : FIDO_ERR_TX;
	close_dev(&dev);
	if (*r != FIDO_OK)
		fido_cbor_info_free(&ci);
	return ci;
}

void op_get_info(struct run *run)
{
	const char *op = "getInfo";
	int r;

	watchdog(op, 30);
	fido_cbor_info_t *ci = get_info(run, &r);
	if (!has(run, F_CTAP2)) {
		absent(run, op, r, not_there);
		return;
	}
	if (ci == NULL) {
		fail(run, op, "%s", fido_strerr(r));
		return;
	}
	if (!hex_eq(run->aaguid_hex, fido_cbor_info_aaguid_ptr(ci), fido_cbor_info_aaguid_len(ci)))
		fail(run, op, "aaguid differs from the persona's %s", run->aaguid_hex);
	else if (!versions_match(ci, run->versions))
		fail(run, op, "versions differ from %s", run->versions);
	else if (opt_value(ci, "clientPin") != (has(run, F_PIN) ? 0 : -1))
		fail(run, op, "clientPin option %d before any PIN was set", opt_value(ci, "clientPin"));
	else if (opt_value(ci, "rk") != (has(run, F_RK) ? 1 : 0) && has(run, F_RK))
		fail(run, op, "rk option %d", opt_value(ci, "rk"));
	else if (fido_cbor_info_maxmsgsiz(ci) < 1024)
		fail(run, op, "maxMsgSize %llu < 1024", (unsigned long long)fido_cbor_info_maxmsgsiz(ci));
	else if (fido_cbor_info_protocols_len(ci) == 0 && has(run, F_PIN))
		fail(run, op, "no pinUvAuthProtocols");
	else
		pass(run, op, "aaguid, versions %s, options and maxMsgSize %llu as expected", run->versions,
		    (unsigned long long)fido_cbor_info_maxmsgsiz(ci));
	fido_cbor_info_free(&ci);
}

static int retries(const struct run *run)
{
	int n = -1;
	fido_dev_t *dev = open_dev(run, false);
	if (dev == NULL || fido_dev_get_retry_count(dev, &n) != FIDO_OK)
		n = -1;
	close_dev(&dev);
	return n;
}

void op_pin(struct run *run)
{
	int r;
	fido_dev_t *dev;

	watchdog("setPIN", 30);
	dev = open_dev(run, false);
	r = dev ? fido_dev_set_pin(dev, PIN1, NULL) : FIDO_ERR_TX;
	close_dev(&dev);
	if (!has(run, F_PIN)) {
		absent(run, "setPIN", r, not_there);
		absent(run, "changePIN", r, not_there);
		return;
	}
	if (r != FIDO_OK) {
		fail(run, "setPIN", "%s", fido_strerr(r));
		return;
	}
	fido_cbor_info_t *ci = get_info(run, &r);
	int n = retries(run), opt = ci ? opt_value(ci, "clientPin") : -2;
	fido_cbor_info_free(&ci);
	if (n != 8 || opt != 1) {
		fail(run, "setPIN", "after setPIN: retries %d (want 8), clientPin option %d (want 1)", n, opt);
		return;
	}
	run->pin = PIN1;
	pass(run, "setPIN", "retries 8, clientPin option true");

	watchdog("changePIN", 30);
	dev = open_dev(run, false);
	r = dev ? fido_dev_set_pin(dev, PIN2, PIN1) : FIDO_ERR_TX;
	close_dev(&dev);
	if (r != FIDO_OK) {
		fail(run, "changePIN", "%s", fido_strerr(r));
		return;
	}
	run->pin = PIN2;
	/* the old PIN must now be wrong, and cost exactly one retry */
	dev = open_dev(run, false);
	r = dev ? fido_dev_set_pin(dev, PIN1, PIN1) : FIDO_ERR_TX;
	close_dev(&dev);
	n = retries(run);
	if (r != FIDO_ERR_PIN_INVALID || n != 7)
		fail(run, "changePIN", "old PIN after change: %s, retries %d (want PIN_INVALID, 7)", fido_strerr(r), n);
	else
		pass(run, "changePIN", "new PIN set; old PIN refused with PIN_INVALID, retries 7");
}

static int verify_ignoring_ext(const fido_cred_t *c, int type, const char *rp)
{
	fido_cred_t *n = fido_cred_new();
	int r;
	if ((r = fido_cred_set_type(n, type)) == FIDO_OK &&
	    (r = fido_cred_set_clientdata_hash(n, fido_cred_clientdata_hash_ptr(c), fido_cred_clientdata_hash_len(c))) == FIDO_OK &&
	    (r = fido_cred_set_rp(n, rp, NULL)) == FIDO_OK &&
	    (r = fido_cred_set_authdata_raw(n, fido_cred_authdata_raw_ptr(c), fido_cred_authdata_raw_len(c))) == FIDO_OK &&
	    (r = fido_cred_set_x509(n, fido_cred_x5c_ptr(c), fido_cred_x5c_len(c))) == FIDO_OK &&
	    (r = fido_cred_set_sig(n, fido_cred_sig_ptr(c), fido_cred_sig_len(c))) == FIDO_OK &&
	    (r = fido_cred_set_fmt(n, fido_cred_fmt(c))) == FIDO_OK)
		r = fido_cred_verify(n);
	fido_cred_free(&n);
	return r;
}

/* make builds one credential and checks the attestation; on success it is recorded in run. */
static int make(struct run *run, const char *op, const char *rp, bool rk, int prot, int ext, int type,
    const char *pin, struct cred **out)
{
	unsigned char cdh[32], uid[16];
	char name[32];
	int r;
	fido_cred_t *c = fido_cred_new();
	fido_dev_t *dev = open_dev(run, false);

	*out = NULL;
	random_bytes(cdh, sizeof cdh);
	random_bytes(uid, sizeof uid);
	snprintf(name, sizeof name, "user%d", run->ncreds);
	if ((r = fido_cred_set_type(c, type)) != FIDO_OK ||
	    (r = fido_cred_set_clientdata_hash(c, cdh, sizeof cdh)) != FIDO_OK ||
	    (r = fido_cred_set_rp(c, rp, "fidolab test RP")) != FIDO_OK ||
	    (r = fido_cred_set_user(c, uid, sizeof uid, name, name, NULL)) != FIDO_OK ||
	    (r = fido_cred_set_rk(c, rk ? FIDO_OPT_TRUE : FIDO_OPT_OMIT)) != FIDO_OK ||
	    (ext && (r = fido_cred_set_extensions(c, ext)) != FIDO_OK) ||
	    (prot && (r = fido_cred_set_prot(c, prot)) != FIDO_OK)) {
		fail(run, op, "building the request: %s", fido_strerr(r));
		goto out;
	}
	r = dev ? fido_dev_make_cred(dev, c, pin) : FIDO_ERR_TX;
	if (r != FIDO_OK)
		goto out;
	int vr = fido_cred_verify(c);
	uint8_t fl = fido_cred_flags(c);
	bool ignored = false;
	if (vr == FIDO_ERR_INVALID_PARAM && ext && !(fl & CTAP_AUTHDATA_EXT_DATA)) {
		/* libfido2 rejects an attestation whose authData lacks a requested extension, although
		 * authenticators ignore extensions they lack; check the signature itself. */
		vr = verify_ignoring_ext(c, type, rp);
		ignored = vr == FIDO_OK;
	}
	size_t pkwant = type == COSE_EDDSA ? 32 : 64;
	if (vr != FIDO_OK) {
		fail(run, op, "attestation (%s) does not verify: %s", fido_cred_fmt(c), fido_strerr(vr));
		r = FIDO_ERR_INVALID_SIG;
	} else if (!(fl & CTAP_AUTHDATA_USER_PRESENT) || !(fl & CTAP_AUTHDATA_ATT_CRED)) {
		fail(run, op, "authData flags 0x%02x lack UP or AT", fl);
		r = FIDO_ERR_INVALID_PARAM;
	} else if (pin && !(fl & CTAP_AUTHDATA_USER_VERIFIED)) {
		fail(run, op, "made with a PIN but UV flag clear (flags 0x%02x)", fl);
		r = FIDO_ERR_INVALID_PARAM;
	} else if (has(run, F_CTAP2) && !hex_eq(run->aaguid_hex, fido_cred_aaguid_ptr(c), fido_cred_aaguid_len(c))) {
		fail(run, op, "attested AAGUID differs from the persona's");
		r = FIDO_ERR_INVALID_PARAM;
	} else if (fido_cred_pubkey_len(c) != pkwant || fido_cred_id_len(c) == 0 || fido_cred_id_len(c) > MAX_ID) {
		fail(run, op, "public key %zu bytes (want %zu), id %zu bytes", fido_cred_pubkey_len(c), pkwant,
		    fido_cred_id_len(c));
		r = FIDO_ERR_INVALID_PARAM;
	} else if ((ext & ~FIDO_EXT_LARGEBLOB_KEY) && !ignored && !(fl & CTAP_AUTHDATA_EXT_DATA)) {
		/* largeBlobKey comes back beside authData, every other extension inside it */
		fail(run, op, "extensions requested, none in authData (flags 0x%02x)", fl);
		r = FIDO_ERR_INVALID_PARAM;
	} else if (run->ncreds < MAX_CREDS) {
		struct cred *k = &run->creds[run->ncreds++];
		memset(k, 0, sizeof *k);
		memcpy(k->id, fido_cred_id_ptr(c), k->idlen = fido_cred_id_len(c));
		memcpy(k->pk, fido_cred_pubkey_ptr(c), k->pklen = fido_cred_pubkey_len(c));
		snprintf(k->rp, sizeof k->rp, "%s", rp);
		k->type = type;
		k->prot = ignored ? 0 : prot; /* an ignored credProtect protects nothing */
		k->rk = rk;
		if (fido_cred_largeblob_key_len(c) == 32) {
			memcpy(k->blobkey, fido_cred_largeblob_key_ptr(c), 32);
			k->has_blobkey = true;
		}
		k->flags_ed = (fl & CTAP_AUTHDATA_EXT_DATA) != 0;
		k->ext_ignored = ignored;
		*out = k;
	}
out:
	close_dev(&dev);
	fido_cred_free(&c);
	return r;
}

/* ext_absent reports an extension the persona lacks. Authenticators ignore extensions they do not
 * support (CTAP 2.1 §12): success without output is the expected answer, as is a client refusal. */
static void ext_absent(const struct run *run, const char *op, int r, const struct cred *k)
{
	static const int want[] = {FIDO_ERR_UNSUPPORTED_EXTENSION, FIDO_ERR_UNSUPPORTED_OPTION, FIDO_OK};

	if (r == FIDO_OK && k && !k->flags_ed)
		row(run, op, "unsupported", "extension ignored, no output in authData%s",
		    k->ext_ignored ? "; fido_cred_verify rejects that (INVALID_PARAM), signature verified directly" : "");
	else if (r == FIDO_OK && k)
		fail(run, op, "persona lacks the extension but authData carries extension output");
	else if (r != FIDO_ERR_INVALID_SIG && r != FIDO_ERR_INVALID_PARAM)
		absent(run, op, r, want);
}

static void describe_ok(const struct run *run, const char *op, const struct cred *k)
{
	pass(run, op, "%s attestation verified, %zu-byte id%s", k->type == COSE_EDDSA ? "EdDSA" : "ES256",
	    k->idlen, k->flags_ed ? ", extension output in authData" : "");
}

void op_make_creds(struct run *run)
{
	struct cred *k;
	int r;
	const char *op;
	static const int no_rk[] = {FIDO_ERR_UNSUPPORTED_OPTION, FIDO_ERR_INVALID_COMMAND, FIDO_OK};

	op = "makeCredential";
	watchdog(op, 30);
	if ((r = make(run, op, RP_NONRK, false, 0, 0, COSE_ES256, pin_for(run), &k)) == FIDO_OK && k)
		describe_ok(run, op, k);
	else if (r != FIDO_ERR_INVALID_SIG && r != FIDO_ERR_INVALID_PARAM)
		fail(run, op, "%s", fido_strerr(r));

	op = "makeCredential without PIN";
	watchdog(op, 30);
	r = make(run, op, RP_NONRK, false, 0, 0, COSE_ES256, NULL, &k);
	if (!has(run, F_PIN) || has(run, F_MCUVNR)) {
		if (r == FIDO_OK && k)
			describe_ok(run, op, k);
		else if (r != FIDO_ERR_INVALID_SIG && r != FIDO_ERR_INVALID_PARAM)
			fail(run, op, "%s", fido_strerr(r));
	} else if (r == FIDO_ERR_PIN_REQUIRED) {
		pass(run, op, "PIN_REQUIRED: no makeCredUvNotRqd, so a PIN-protected key wants UV");
	} else {
		fail(run, op, "want PIN_REQUIRED (no makeCredUvNotRqd), got %s", fido_strerr(r));
	}

	op = "makeCredential EdDSA";
	watchdog(op, 30);
	r = make(run, op, RP_NONRK, false, 0, 0, COSE_EDDSA, pin_for(run), &k);
	if (!has(run, F_EDDSA)) {
		static const int want[] = {FIDO_ERR_UNSUPPORTED_ALGORITHM, FIDO_OK};
		absent(run, op, r, want);
	} else if (r == FIDO_OK && k)
		describe_ok(run, op, k);
	else if (r != FIDO_ERR_INVALID_SIG && r != FIDO_ERR_INVALID_PARAM)
		fail(run, op, "%s", fido_strerr(r));

	op = "makeCredential resident";
	watchdog(op, 30);
	r = make(run, op, RP_RK, true, 0, 0, COSE_ES256, pin_for(run), &k);
	if (!has(run, F_RK))
		absent(run, op, r, no_rk);
	else if (r == FIDO_OK && k)
		describe_ok(run, op, k);
	else if (r != FIDO_ERR_INVALID_SIG && r != FIDO_ERR_INVALID_PARAM)
		fail(run, op, "%s", fido_strerr(r));

	for (int prot = 1; prot <= 3; prot++) {
		char name[64];
		snprintf(name, sizeof name, "makeCredential credProtect=%d", prot);
		watchdog(name, 30);
		r = make(run, name, RP_RK, true, prot, FIDO_EXT_CRED_PROTECT, COSE_ES256, pin_for(run), &k);
		if (!has(run, F_CREDPROT | F_RK))
			ext_absent(run, name, r, k);
		else if (r == FIDO_OK && k)
			describe_ok(run, name, k);
		else if (r != FIDO_ERR_INVALID_SIG && r != FIDO_ERR_INVALID_PARAM)
			fail(run, name, "%s", fido_strerr(r));
	}

	op = "makeCredential hmac-secret";
	watchdog(op, 30);
	r = make(run, op, RP_HMAC, has(run, F_RK), 0, FIDO_EXT_HMAC_SECRET, COSE_ES256, pin_for(run), &k);
	if (!has(run, F_HMAC)) {
		ext_absent(run, op, r, k);
	} else if (r == FIDO_OK && k && k->flags_ed)
		pass(run, op, "attestation verified, hmac-secret output present in authData");
	else if (r == FIDO_OK && k)
		fail(run, op, "no extension output in authData");
	else if (r != FIDO_ERR_INVALID_SIG && r != FIDO_ERR_INVALID_PARAM)
		fail(run, op, "%s", fido_strerr(r));

	op = "makeCredential largeBlobKey";
	watchdog(op, 30);
	r = make(run, op, RP_BLOB, true, 0, FIDO_EXT_LARGEBLOB_KEY, COSE_ES256, pin_for(run), &k);
	if (!has(run, F_LARGEBLOB | F_RK)) {
		if (r == FIDO_OK && k && !k->has_blobkey)
			row(run, op, "unsupported", "extension ignored: no largeBlobKey returned");
		else if (r == FIDO_OK && k)
			fail(run, op, "persona lacks largeBlobs but a largeBlobKey came back");
		else {
			static const int want[] = {FIDO_ERR_UNSUPPORTED_EXTENSION, FIDO_ERR_UNSUPPORTED_OPTION,
			    FIDO_ERR_INVALID_COMMAND, FIDO_OK};
			absent(run, op, r, want);
		}
	} else if (r == FIDO_OK && k && k->has_blobkey)
		pass(run, op, "attestation verified, 32-byte largeBlobKey returned");
	else if (r == FIDO_OK && k)
		fail(run, op, "no largeBlobKey returned");
	else if (r != FIDO_ERR_INVALID_SIG && r != FIDO_ERR_INVALID_PARAM)
		fail(run, op, "%s", fido_strerr(r));
}

/*
 * Credential management, largeBlobs, authenticatorConfig, bio enrollment and reset through
 * libfido2; results are compared with what the client made earlier in the run.
 */
#include "fidolab_libfido2.h"

#include <fido/bio.h>
#include <fido/config.h>
#include <fido/credman.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int not_there[] = {FIDO_ERR_INVALID_COMMAND, FIDO_ERR_UNSUPPORTED_OPTION, FIDO_OK};

static int rk_count(const struct run *run, const char *rp)
{
	int n = 0;
	for (int i = 0; i < run->ncreds; i++)
		n += run->creds[i].rk && (rp == NULL || strcmp(run->creds[i].rp, rp) == 0);
	return n;
}

static int metadata(const struct run *run, uint64_t *existing, uint64_t *remaining)
{
	fido_credman_metadata_t *md = fido_credman_metadata_new();
	fido_dev_t *dev = open_dev(run, false);
	int r = dev ? fido_credman_get_dev_metadata(dev, md, run->pin) : FIDO_ERR_TX;
	*existing = fido_credman_rk_existing(md);
	*remaining = fido_credman_rk_remaining(md);
	close_dev(&dev);
	fido_credman_metadata_free(&md);
	return r;
}

/* list_rp checks the key's credentials of rp against the client's table; returns the count or -1. */
static int list_rp(const struct run *run, const char *op, const char *rp)
{
	fido_credman_rk_t *rk = fido_credman_rk_new();
	fido_dev_t *dev = open_dev(run, false);
	int r = dev ? fido_credman_get_dev_rk(dev, rp, rk, run->pin) : FIDO_ERR_TX, n = -1;

	close_dev(&dev);
	if (r != FIDO_OK && !(r == FIDO_ERR_NO_CREDENTIALS && rk_count(run, rp) == 0)) {
		fail(run, op, "enumerate credentials of %s: %s", rp, fido_strerr(r));
		goto out;
	}
	n = (int)fido_credman_rk_count(rk);
	for (int i = 0; i < n; i++) {
		const fido_cred_t *c = fido_credman_rk(rk, (size_t)i);
		const struct cred *k = find_cred(run, fido_cred_id_ptr(c), fido_cred_id_len(c));
		if (k == NULL || !k->rk) {
			fail(run, op, "%s: enumerated credential %d unknown to the client", rp, i);
			n = -1;
			goto out;
		}
		if (has(run, F_CREDPROT) && fido_cred_prot(c) != (k->prot ? k->prot : 1)) {
			fail(run, op, "%s: credential %d credProtect %d, made with %d", rp, i, fido_cred_prot(c), k->prot);
			n = -1;
			goto out;
		}
		if (fido_cred_pubkey_len(c) != k->pklen || memcmp(fido_cred_pubkey_ptr(c), k->pk, k->pklen) != 0) {
			fail(run, op, "%s: credential %d public key differs from the attested one", rp, i);
			n = -1;
			goto out;
		}
	}
out:
	fido_credman_rk_free(&rk);
	return n;
}

void op_credman(struct run *run)
{
	const char *op = "credMgmt metadata";
	uint64_t ex = 0, rem = 0;
	int r, want = rk_count(run, NULL);

	watchdog(op, 30);
	r = metadata(run, &ex, &rem);
	if (!has(run, F_CREDMGMT)) {
		absent(run, op, r, not_there);
		absent(run, "credMgmt enumerate", r, not_there);
		absent(run, "credMgmt delete", r, not_there);
		return;
	}
	if (r != FIDO_OK)
		fail(run, op, "%s", fido_strerr(r));
	else if ((int)ex != want || (run->rk_capacity > 0 && (int)(ex + rem) != run->rk_capacity))
		fail(run, op, "existing %llu remaining %llu; want existing %d, sum %d", (unsigned long long)ex,
		    (unsigned long long)rem, want, run->rk_capacity);
	else
		pass(run, op, "existing %llu, remaining %llu as made", (unsigned long long)ex, (unsigned long long)rem);

	op = "credMgmt enumerate";
	watchdog(op, 60);
	fido_credman_rp_t *rp = fido_credman_rp_new();
	fido_dev_t *dev = open_dev(run, false);
	r = dev ? fido_credman_get_dev_rp(dev, rp, run->pin) : FIDO_ERR_TX;
	close_dev(&dev);
	int nrp = 0, total = 0, bad = 0;
	for (int i = 0; i < run->ncreds; i++) {
		bool seen = false;
		for (int j = 0; j < i; j++)
			seen |= run->creds[j].rk && strcmp(run->creds[j].rp, run->creds[i].rp) == 0;
		nrp += run->creds[i].rk && !seen;
	}
	if (r != FIDO_OK) {
		fail(run, op, "enumerate RPs: %s", fido_strerr(r));
	} else if ((int)fido_credman_rp_count(rp) != nrp) {
		fail(run, op, "%zu RPs, want %d", fido_credman_rp_count(rp), nrp);
	} else {
		for (size_t i = 0; i < fido_credman_rp_count(rp) && !bad; i++) {
			const char *id = fido_credman_rp_id(rp, i);
			int n = list_rp(run, op, id);
			if (n < 0)
				bad = 1;
			else if (n != rk_count(run, id)) {
				fail(run, op, "%s: %d credentials, want %d", id, n, rk_count(run, id));
				bad = 1;
			}
			total += n;
		}
		if (!bad)
			pass(run, op, "%d RPs, %d credentials, ids, public keys and credProtect match", nrp, total);
	}
	fido_credman_rp_free(&rp);

	op = "credMgmt delete";
	watchdog(op, 30);
	struct cred *victim = NULL;
	for (int i = 0; i < run->ncreds; i++)
		if (run->creds[i].rk && strcmp(run->creds[i].rp, "rk.fidolab.test") == 0)
			victim = &run->creds[i];
	if (victim == NULL) {
		fail(run, op, "no resident credential to delete");
		return;
	}
	dev = open_dev(run, false);
	r = dev ? fido_credman_del_dev_rk(dev, victim->id, victim->idlen, run->pin) : FIDO_ERR_TX;
	close_dev(&dev);
	if (r != FIDO_OK) {
		fail(run, op, "%s", fido_strerr(r));
		return;
	}
	victim->rk = false;
	victim->rp[0] = '\0';
	int n = list_rp(run, op, "rk.fidolab.test");
	if (n < 0)
		return;
	r = metadata(run, &ex, &rem);
	if (n != rk_count(run, "rk.fidolab.test") || r != FIDO_OK || (int)ex != rk_count(run, NULL))
		fail(run, op, "after delete: %d credentials on the RP (want %d), existing %llu (want %d)", n,
		    rk_count(run, "rk.fidolab.test"), (unsigned long long)ex, rk_count(run, NULL));
	else
		pass(run, op, "credential gone from enumeration; existing now %llu", (unsigned long long)ex);
}

void op_largeblob(struct run *run)
{
	const char *op = "largeBlob set/get";
	unsigned char key[32], data[200], *got = NULL;
	size_t gotlen = 0;
	const struct cred *k = NULL;
	int r;

	watchdog(op, 60);
	for (int i = 0; i < run->ncreds; i++)
		if (run->creds[i].has_blobkey)
			k = &run->creds[i];
	if (k)
		memcpy(key, k->blobkey, sizeof key);
	else
		random_bytes(key, sizeof key);
	random_bytes(data, sizeof data);
	fido_dev_t *dev = open_dev(run, false);
	r = dev ? fido_dev_largeblob_set(dev, key, sizeof key, data, sizeof data, run->pin) : FIDO_ERR_TX;
	close_dev(&dev);
	if (!has(run, F_LARGEBLOB)) {
		absent(run, op, r, not_there);
		return;
	}
	if (k == NULL || r != FIDO_OK) {
		fail(run, op, k ? "set: %s" : "no credential with a largeBlobKey (%s)", fido_strerr(r));
		return;
	}
	dev = open_dev(run, false);
	r = dev ? fido_dev_largeblob_get(dev, key, sizeof key, &got, &gotlen) : FIDO_ERR_TX;
	close_dev(&dev);
	if (r != FIDO_OK || gotlen != sizeof data || memcmp(got, data, sizeof data) != 0) {
		fail(run, op, "get: %s, %zu bytes, equal=%d", fido_strerr(r), gotlen,
		    gotlen == sizeof data && memcmp(got, data, gotlen) == 0);
		free(got);
		return;
	}
	free(got);
	got = NULL;
	dev = open_dev(run, false);
	r = dev ? fido_dev_largeblob_remove(dev, key, sizeof key, run->pin) : FIDO_ERR_TX;
	int r2 = dev && r == FIDO_OK ? fido_dev_largeblob_get(dev, key, sizeof key, &got, &gotlen) : r;
	close_dev(&dev);
	free(got);
	if (r != FIDO_OK || r2 != FIDO_ERR_NOTFOUND)
		fail(run, op, "remove: %s, then get: %s (want NOTFOUND)", fido_strerr(r), fido_strerr(r2));
	else
		pass(run, op, "200 bytes stored and read back identical; removed, then not found");
}

static int info_opt(const struct run *run, const char *name, uint64_t *minpin, bool *force)
{
	fido_cbor_info_t *ci = fido_cbor_info_new();
	fido_dev_t *dev = open_dev(run, false);
	int v = -2;
	if (dev && fido_dev_get_cbor_info(dev, ci) == FIDO_OK) {
		char **names = fido_cbor_info_options_name_ptr(ci);
		const bool *vals = fido_cbor_info_options_value_ptr(ci);
		v = -1;
		for (size_t i = 0; i < fido_cbor_info_options_len(ci); i++)
			if (strcmp(names[i], name) == 0)
				v = vals[i];
		if (minpin)
			*minpin = fido_cbor_info_minpinlen(ci);
		if (force)
			*force = fido_cbor_info_new_pin_required(ci);
	}
	close_dev(&dev);
	fido_cbor_info_free(&ci);
	return v;
}

void op_config(struct run *run)
{
	const char *op = "config toggleAlwaysUv";
	int r, v0, v1, v2;

	watchdog(op, 30);
	v0 = info_opt(run, "alwaysUv", NULL, NULL);
	fido_dev_t *dev = open_dev(run, false);
	r = dev ? fido_dev_toggle_always_uv(dev, run->pin) : FIDO_ERR_TX;
	close_dev(&dev);
	if (!has(run, F_CONFIG)) {
		absent(run, op, r, not_there);
		absent(run, "config setMinPINLength", r, not_there);
		return;
	}
	v1 = info_opt(run, "alwaysUv", NULL, NULL);
	dev = open_dev(run, false);
	int rb = dev ? fido_dev_toggle_always_uv(dev, run->pin) : FIDO_ERR_TX;
	close_dev(&dev);
	v2 = info_opt(run, "alwaysUv", NULL, NULL);
	if (r != FIDO_OK || rb != FIDO_OK)
		fail(run, op, "toggle: %s, toggle back: %s", fido_strerr(r), fido_strerr(rb));
	else if (v0 != 0 || v1 != 1 || v2 != 0)
		fail(run, op, "alwaysUv option %d -> %d -> %d, want 0 -> 1 -> 0", v0, v1, v2);
	else
		pass(run, op, "alwaysUv option false -> true -> false");

	op = "config setMinPINLength";
	watchdog(op, 30);
	uint64_t minpin = 0;
	bool force = true;
	size_t want = (size_t)run->min_pin + 2;
	dev = open_dev(run, false);
	r = dev ? fido_dev_set_pin_minlen(dev, want, run->pin) : FIDO_ERR_TX;
	close_dev(&dev);
	info_opt(run, "clientPin", &minpin, &force);
	dev = open_dev(run, false);
	int rl = dev ? fido_dev_set_pin_minlen(dev, (size_t)run->min_pin, run->pin) : FIDO_ERR_TX;
	close_dev(&dev);
	if (r != FIDO_OK)
		fail(run, op, "%s", fido_strerr(r));
	else if (minpin != want || force)
		fail(run, op, "getInfo minPINLength %llu (want %zu), forcePINChange %d (want 0: PIN is long enough)",
		    (unsigned long long)minpin, want, force);
	else if (rl != FIDO_ERR_PIN_POLICY_VIOLATION)
		fail(run, op, "lowering the minimum: %s, want PIN_POLICY_VIOLATION", fido_strerr(rl));
	else
		pass(run, op, "minPINLength %zu in getInfo; lowering it refused with PIN_POLICY_VIOLATION", want);
}

static int templates(const struct run *run, fido_bio_template_array_t *ta)
{
	fido_dev_t *dev = open_dev(run, false);
	int r = dev ? fido_bio_dev_get_template_array(dev, ta, run->pin) : FIDO_ERR_TX;
	close_dev(&dev);
	return r;
}

void op_bio(struct run *run)
{
	const char *op = "bioEnroll";
	fido_bio_info_t *bi = fido_bio_info_new();
	fido_bio_template_t *t = fido_bio_template_new();
	fido_bio_enroll_t *e = fido_bio_enroll_new();
	fido_bio_template_array_t *ta = fido_bio_template_array_new();
	int r, samples = 0;

	watchdog(op, 90);
	fido_dev_t *dev = open_dev(run, false);
	r = dev ? fido_bio_dev_get_info(dev, bi) : FIDO_ERR_TX;
	if (!has(run, F_BIO)) {
		absent(run, op, r, not_there);
		goto out;
	}
	if (r != FIDO_OK || fido_bio_info_type(bi) != 1 || fido_bio_info_max_samples(bi) == 0) {
		fail(run, op, "getInfo: %s, type %u, max samples %u", fido_strerr(r), fido_bio_info_type(bi),
		    fido_bio_info_max_samples(bi));
		goto out;
	}
	r = fido_bio_dev_enroll_begin(dev, t, e, 10000, run->pin);
	while (r == FIDO_OK && fido_bio_enroll_remaining_samples(e) > 0 && ++samples < 32)
		r = fido_bio_dev_enroll_continue(dev, t, e, 10000);
	close_dev(&dev);
	if (r != FIDO_OK || fido_bio_template_id_len(t) == 0) {
		fail(run, op, "enroll after %d samples: %s", samples, fido_strerr(r));
		goto out;
	}
	if ((r = templates(run, ta)) != FIDO_OK || fido_bio_template_array_count(ta) != 1 ||
	    fido_bio_template_id_len(fido_bio_template(ta, 0)) != fido_bio_template_id_len(t) ||
	    memcmp(fido_bio_template_id_ptr(fido_bio_template(ta, 0)), fido_bio_template_id_ptr(t),
		fido_bio_template_id_len(t)) != 0) {
		fail(run, op, "enumerate: %s, %zu templates; want the one enrolled", fido_strerr(r),
		    fido_bio_template_array_count(ta));
		goto out;
	}
	fido_bio_template_set_name(t, "fidolab finger");
	dev = open_dev(run, false);
	r = dev ? fido_bio_dev_set_template_name(dev, t, run->pin) : FIDO_ERR_TX;
	close_dev(&dev);
	int rt = templates(run, ta);
	const char *name = rt == FIDO_OK && fido_bio_template_array_count(ta) == 1 ?
	    fido_bio_template_name(fido_bio_template(ta, 0)) : NULL;
	if (r != FIDO_OK || name == NULL || strcmp(name, "fidolab finger") != 0) {
		fail(run, op, "rename: %s, name read back %s", fido_strerr(r), name ? name : "(none)");
		goto out;
	}
	dev = open_dev(run, false);
	r = dev ? fido_bio_dev_enroll_remove(dev, t, run->pin) : FIDO_ERR_TX;
	close_dev(&dev);
	rt = templates(run, ta);
	if (r != FIDO_OK || !(rt == FIDO_OK || rt == FIDO_ERR_INVALID_OPTION) || fido_bio_template_array_count(ta) != 0)
		fail(run, op, "remove: %s, then enumerate: %s with %zu templates", fido_strerr(r), fido_strerr(rt),
		    fido_bio_template_array_count(ta));
	else
		pass(run, op, "enrolled in %d samples, enumerated, renamed, removed", samples + 1);
out:
	close_dev(&dev);
	fido_bio_info_free(&bi);
	fido_bio_template_free(&t);
	fido_bio_enroll_free(&e);
	fido_bio_template_array_free(&ta);
}

void op_reset(struct run *run)
{
	const char *op = "reset";
	fido_assert_t *a = fido_assert_new();
	unsigned char cdh[32];

	watchdog(op, 30);
	fido_dev_t *dev = open_dev(run, false);
	int r = dev ? fido_dev_reset(dev) : FIDO_ERR_TX;
	close_dev(&dev);
	if (!has(run, F_CTAP2)) {
		absent(run, op, r, not_there);
		goto out;
	}
	if (r != FIDO_OK) {
		fail(run, op, "%s", fido_strerr(r));
		goto out;
	}
	int pinopt = info_opt(run, "clientPin", NULL, NULL);
	random_bytes(cdh, sizeof cdh);
	fido_assert_set_clientdata_hash(a, cdh, sizeof cdh);
	fido_assert_set_rp(a, "rk.fidolab.test");
	dev = open_dev(run, false);
	int ra = dev ? fido_dev_get_assert(dev, a, NULL) : FIDO_ERR_TX;
	close_dev(&dev);
	if (pinopt != 0 || ra != FIDO_ERR_NO_CREDENTIALS)
		fail(run, op, "after reset: clientPin option %d (want 0), discoverable assertion %s (want NO_CREDENTIALS)",
		    pinopt, fido_strerr(ra));
	else
		pass(run, op, "PIN cleared, resident credentials gone");
out:
	fido_assert_free(&a);
}

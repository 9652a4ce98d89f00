"""Management operations of the python-fido2 peer (see pyfido2_peer.py): CredentialManagement,
FPBioEnrollment, LargeBlobs, Config, PIN blocking across a power cycle, and reset."""

import os

from fido2 import cbor
from fido2.ctap import CtapError
from fido2.ctap2 import ClientPin, Config, CredentialManagement, FPBioEnrollment, LargeBlobs
from fido2.utils import sha256

from pyfido2_ctap2 import (P, PIN3, PUAT_REQUIRED, ctap2_of, desc, make, new_credential_args, pin_token,
                           verify_assertion)
from pyfido2_peer import Unsupported, check, err_name, expect_ctap_error, probe_cbor

E = CtapError.ERR
R = CredentialManagement.RESULT


def op_cred_mgmt(s):
    ctap = ctap2_of(s, 0x0A)
    o = ctap.info.options
    if not (o.get("credMgmt") or o.get("credentialMgmtPreview")):
        raise Unsupported("no credMgmt in getInfo; 0x0A answered %s, 0x41 answered %s" % (
            probe_cbor(s, 0x0A, cbor.encode({1: 1})), probe_cbor(s, 0x41, cbor.encode({1: 1}))))
    pp, tok = pin_token(s, ctap, P.CREDENTIAL_MGMT)
    cm = CredentialManagement(ctap, pp, tok)
    meta = cm.get_metadata()
    want = len(s.resident)
    check(meta[R.EXISTING_CRED_COUNT] == want, "metadata: %d credentials, made %d" % (meta[R.EXISTING_CRED_COUNT], want))
    check(meta[R.MAX_REMAINING_COUNT] >= 0, "remaining count")
    rps = cm.enumerate_rps()
    ids = {r[R.RP]["id"] for r in rps}
    check(ids == {rp for rp, _ in s.resident}, "RPs %s" % sorted(ids))
    for r in rps:
        check(r[R.RP_ID_HASH] == sha256(r[R.RP]["id"].encode()), "rpIDHash of %s" % r[R.RP]["id"])
    n = 0
    for rp in ids:
        for c in cm.enumerate_creds(sha256(rp.encode())):
            uid = c[R.USER]["id"]
            cid, pub = s.resident[(rp, uid)]
            check(c[R.CREDENTIAL_ID]["id"] == cid, "credential ID of %s/%r" % (rp, uid))
            check(dict(c[R.PUBLIC_KEY]) == dict(pub), "public key of %s/%r" % (rp, uid))
            check(c.get(R.CRED_PROTECT) in (1, 2, 3), "credProtect %r" % c.get(R.CRED_PROTECT))
            n += 1
    check(n == want, "enumerated %d credentials, made %d" % (n, want))
    victim = ("rk.example", b"user-2")
    cid, _ = s.resident.pop(victim)
    cm.delete_cred(desc(cid))
    check(cm.get_metadata()[R.EXISTING_CRED_COUNT] == want - 1, "count after delete")
    expect_ctap_error([E.NO_CREDENTIALS], ctap.get_assertion, "rk.example", os.urandom(32), [desc(cid)])
    expect_ctap_error([E.NO_CREDENTIALS], cm.delete_cred, desc(cid))
    updated = ""
    if o.get("credMgmt"):
        rp, uid = "rk.example", b"user-1"
        cm.update_user_info(desc(s.resident[(rp, uid)][0]), {"id": uid, "name": "renamed", "displayName": "Renamed"})
        names = {c[R.USER]["id"]: c[R.USER].get("name") for c in cm.enumerate_creds(sha256(rp.encode()))}
        check(names.get(uid) == "renamed", "user after update %r" % names.get(uid))
        updated = ", user renamed"
    return "%d credentials over %d RPs matched what was made (IDs, keys); one deleted%s" % (want, len(ids), updated)


def op_bio(s):
    ctap = ctap2_of(s, 0x09)
    o = ctap.info.options
    if "bioEnroll" not in o and "userVerificationMgmtPreview" not in o:
        raise Unsupported("no bioEnroll in getInfo; 0x09 answered %s, 0x40 answered %s" % (
            probe_cbor(s, 0x09, cbor.encode({6: True})), probe_cbor(s, 0x40, cbor.encode({6: True}))))
    pp, tok = pin_token(s, ctap, P.BIO_ENROLL)
    bio = FPBioEnrollment(ctap, pp, tok)
    sensor = bio.get_fingerprint_sensor_info()
    samples = sensor.get(3)
    ctx = bio.enroll(timeout=10000)
    template, captures = None, 0
    while template is None:
        template = ctx.capture()
        captures += 1
        check(captures <= 32, "enrollment never completes")
    try:
        return bio_enrolled(s, ctap, bio, template, captures, samples)
    except Exception:
        # leave no fingerprint behind: it would turn on built-in UV for the operations after this
        pp, tok = pin_token(s, ctap, P.BIO_ENROLL)
        FPBioEnrollment(ctap, pp, tok).remove_enrollment(template)
        raise


def bio_enrolled(s, ctap, bio, template, captures, samples):
    check(samples is None or captures == samples, "%d captures, sensor said %s samples" % (captures, samples))
    # Named before the first enumeration: the key omits the optional templateFriendlyName of an
    # unnamed template, and python-fido2 0.9.1 then raises KeyError in enumerate_enrollments.
    bio.set_name(template, "right thumb")
    check(bio.enumerate_enrollments().get(template) == "right thumb", "name not set")
    check(ctap.get_info().options.get("uv") is True, "uv option false with a fingerprint enrolled")
    retries, _ = ClientPin(ctap).get_uv_retries()
    check(retries > 0, "%d UV retries" % retries)
    # built-in UV: as a token (getPinUvAuthTokenUsingUvWithPermissions) and as the uv option
    _, cd = make(s, ctap, "bio.example", b"bio-user")
    cp = ClientPin(ctap)
    tok = cp.get_uv_token(P.GET_ASSERTION, "bio.example")
    cdh = os.urandom(32)
    a = ctap.get_assertion("bio.example", cdh, [desc(cd.credential_id)], None, None,
                           cp.protocol.authenticate(tok, cdh), cp.protocol.VERSION)
    verify_assertion(a, cdh, "bio.example", cd.public_key, cd.credential_id, uv=True)
    cdh = os.urandom(32)
    a = ctap.get_assertion("bio.example", cdh, [desc(cd.credential_id)], None, {"uv": True})
    verify_assertion(a, cdh, "bio.example", cd.public_key, cd.credential_id, uv=True)
    pp, tok = pin_token(s, ctap, P.BIO_ENROLL)
    bio = FPBioEnrollment(ctap, pp, tok)
    bio.remove_enrollment(template)
    check(bio.enumerate_enrollments() == {}, "template still enumerated after removal")
    check(ctap.get_info().options.get("uv") is False, "uv option true with no fingerprint")
    expect_ctap_error([E.INVALID_OPTION], bio.remove_enrollment, template)
    return "enrolled in %d captures, named, UV token and uv option verified, removed" % captures


def op_large_blobs(s):
    ctap = ctap2_of(s, 0x0C)
    if not ctap.info.options.get("largeBlobs"):
        raise Unsupported("no largeBlobs in getInfo; 0x0C answered %s" % probe_cbor(s, 0x0C, cbor.encode({1: 64, 3: 0})))
    keys, creds = [], []
    for u in (b"lb-1", b"lb-2"):
        att, cd = make(s, ctap, "lb.example", u, rk=True, uv=True, ext={"largeBlobKey": True})
        check(att.large_blob_key is not None and len(att.large_blob_key) == 32, "largeBlobKey missing")
        keys.append(att.large_blob_key)
        creds.append(cd)
    check(keys[0] != keys[1], "two credentials share a largeBlobKey")
    pp, tok = pin_token(s, ctap, P.LARGE_BLOB_WRITE)
    lb = LargeBlobs(ctap, pp, tok)
    check(lb.read_blob_array() == [], "a fresh key's array is not empty")
    data = [os.urandom(200), b"fidolab large blob " * 10]
    for k, d in zip(keys, data):
        lb.put_blob(k, d)
    for k, d in zip(keys, data):
        check(lb.get_blob(k) == d, "blob read back differs")
    cdh = os.urandom(32)
    a = ctap.get_assertion("lb.example", cdh, [desc(creds[0].credential_id)], {"largeBlobKey": True})
    verify_assertion(a, cdh, "lb.example", creds[0].public_key, creds[0].credential_id)
    check(a.large_blob_key == keys[0], "getAssertion largeBlobKey differs from makeCredential's")
    lb.delete_blob(keys[0])
    check(lb.get_blob(keys[0]) is None and lb.get_blob(keys[1]) == data[1], "delete removed the wrong blob")
    # Incompressible data larger than maxSerializedLargeBlobArray, yet one fragment: python-fido2
    # 0.9.1 sends length = fragment size on every fragment, so stay under maxMsgSize - 64.
    limit = ctap.info.max_large_blob or 1024
    big = os.urandom(limit - 40)
    code = expect_ctap_error([E.LARGE_BLOB_STORAGE_FULL], lb.put_blob, keys[0], big)
    check(lb.get_blob(keys[1]) == data[1], "array damaged by the refused write")
    expect_ctap_error([E.PIN_AUTH_INVALID], LargeBlobs(ctap, pp, os.urandom(32)).put_blob, keys[0], b"x")
    return "2 blobs written and read back, largeBlobKey equal in getAssertion, delete kept the other; " \
        "oversize array: %s" % err_name(code)


def op_config(s):
    ctap = ctap2_of(s, 0x0D)
    if not ctap.info.options.get("authnrCfg"):
        raise Unsupported("no authnrCfg in getInfo; 0x0D answered %s" % probe_cbor(s, 0x0D, cbor.encode({1: 2})))
    pp, tok = pin_token(s, ctap, P.AUTHENTICATOR_CFG)
    cfg = Config(ctap, pp, tok)
    expect_ctap_error([E.PIN_AUTH_INVALID], Config(ctap, pp, os.urandom(32)).toggle_always_uv)
    cfg.toggle_always_uv()
    i = ctap.get_info()
    check(i.options.get("alwaysUv") is True and i.options.get("makeCredUvNotRqd") is not True, "alwaysUv not on: %s" % i.options)
    check(not i.options.get("uv"), "a fingerprint is still enrolled")  # else the key would use it
    cdh, rp, user, params = new_credential_args("cfg.example", b"cfg")
    c1 = expect_ctap_error([PUAT_REQUIRED], ctap.make_credential, cdh, rp, user, params)
    cfg.toggle_always_uv()
    check(ctap.get_info().options.get("alwaysUv") is False, "alwaysUv not off")
    cp = ClientPin(ctap)
    cfg.set_min_pin_length(min_pin_length=6, rp_ids=["cfg.example"])
    check(ctap.get_info().min_pin_length == 6, "minPINLength not 6")
    c2 = expect_ctap_error([E.PIN_POLICY_VIOLATION], cp.change_pin, s.pin, "13579")
    c3 = expect_ctap_error([E.PIN_POLICY_VIOLATION], cfg.set_min_pin_length, min_pin_length=4)
    att, _ = make(s, ctap, "cfg.example", b"cfg", uv=True, ext={"minPinLength": True})
    check((att.auth_data.extensions or {}).get("minPinLength") == 6, "minPinLength output %s" % att.auth_data.extensions)
    pp, tok = pin_token(s, ctap, P.AUTHENTICATOR_CFG)
    Config(ctap, pp, tok).set_min_pin_length(force_change_pin=True)
    check(ctap.get_info().force_pin_change is True, "forcePINChange not set")
    c4 = expect_ctap_error([E.PIN_POLICY_VIOLATION], cp.get_pin_token, s.pin, P.GET_ASSERTION, "pin.example")
    cp.change_pin(s.pin, PIN3)
    s.pin = PIN3
    check(ctap.get_info().force_pin_change is False, "forcePINChange still set after a change")
    return "alwaysUv: makeCredential without UV %s; minPINLength 6: short PIN %s, lowering %s; " \
        "forcePINChange: token %s, cleared by change" % tuple(map(err_name, (c1, c2, c3, c4)))


def op_pin_block(s):
    ctap = ctap2_of(s, 0x06)
    cp = ClientPin(ctap)
    codes = [err_name(expect_ctap_error([E.PIN_INVALID, E.PIN_AUTH_BLOCKED], cp.get_pin_token, "0000000%d" % i, P.GET_ASSERTION, "pin.example"))
             for i in range(3)]
    check(codes == ["PIN_INVALID", "PIN_INVALID", "PIN_AUTH_BLOCKED"], "wrong PINs answered %s" % codes)
    expect_ctap_error([E.PIN_AUTH_BLOCKED], cp.get_pin_token, s.pin, P.GET_ASSERTION, "pin.example")
    retries, _ = cp.get_pin_retries()
    check(retries == 5, "%d retries after 3 wrong PINs" % retries)
    s.control("/usb0/power/off")
    s.control("/usb0/power/on")
    s.open()
    ctap = ctap2_of(s, 0x06)
    cp = ClientPin(ctap)
    cp.get_pin_token(s.pin, P.GET_ASSERTION, "pin.example")
    retries, _ = cp.get_pin_retries()
    check(retries == 8, "%d retries after the right PIN" % retries)
    return "3rd wrong PIN: PIN_AUTH_BLOCKED until a power cycle, then the right PIN restores 8 retries"


def op_reset(s):
    ctap = ctap2_of(s, 0x07)  # right after op_pin_block's power cycle: inside the reset window
    ctap.reset()
    s.pin, s.resident = None, {}
    i = ctap.get_info()
    check(i.options.get("clientPin") in (None, False), "PIN survived reset")
    expect_ctap_error([E.NO_CREDENTIALS], ctap.get_assertion, "rk.example", os.urandom(32))
    expect_ctap_error([E.NO_CREDENTIALS], ctap.get_assertion, "mc.example", os.urandom(32), [desc(s.mc[0])])
    return "PIN and credentials gone"


OPERATIONS = [
    ("cred_mgmt", op_cred_mgmt),
    ("bio_enroll", op_bio),
    ("large_blobs", op_large_blobs),
    ("config", op_config),
    ("client_pin.block_and_power_cycle", op_pin_block),
    ("ctap2.reset", op_reset),
]

"""CTAP2 operations of the python-fido2 peer (see pyfido2_peer.py): Ctap2, ClientPin (protocols 1
and 2), hmac-secret, credBlob, Fido2Client, CredentialManagement, FPBioEnrollment, LargeBlobs,
Config, PIN blocking and reset. Every operation checks what the key answered."""

import os

from fido2 import cbor
from fido2.attestation import PackedAttestation
from fido2.attestation.base import verify_x509_chain
from fido2.client import Fido2Client
from fido2.ctap import CtapError
from fido2.ctap2 import (ClientPin, Config, CredentialManagement, Ctap2, FPBioEnrollment, LargeBlobs,
                         PinProtocolV1, PinProtocolV2)
from fido2.ctap2.extensions import HmacSecretExtension
from fido2.server import AttestationVerifier, Fido2Server
from fido2.utils import sha256

from pyfido2_peer import Fail, Unsupported, check, err_name, expect_ctap_error, probe_cbor, require_ctap2

P = ClientPin.PERMISSION
E = CtapError.ERR
# Not trivial: the ctap22 persona enforces a PIN complexity policy ("12345678" is refused).
PIN1, PIN2, PIN3 = "fidolab-pin-1", "fidolab-pin-2", "24681357"
ORIGIN, RP = "https://example.com", "example.com"
# CTAP 2.1 names 0x36 PUAT_REQUIRED; python-fido2 0.9.1 still calls it PIN_REQUIRED.
PUAT_REQUIRED = E.PIN_REQUIRED
INVALID_SUBCOMMAND = 0x3E  # not in python-fido2 0.9.1's table


def new_credential_args(rp_id, user_id, alg=-7):
    """Positional (clientDataHash, rp, user, pubKeyCredParams) of a makeCredential."""
    return (os.urandom(32), {"id": rp_id, "name": rp_id}, {"id": user_id, "name": user_id.decode(errors="replace")},
            [{"type": "public-key", "alg": alg}])


def desc(cred_id):
    return {"type": "public-key", "id": cred_id}


def ctap2_of(s, cmd):
    require_ctap2(s, cmd)
    return Ctap2(s.dev)  # strict_cbor: every answer must be CTAP2 canonical CBOR


def pin_token(s, ctap, perms, rp_id=None, proto=None):
    cp = ClientPin(ctap, proto)
    return cp.protocol, cp.get_pin_token(s.pin, perms, rp_id)


def verify_att(att, cdh, rp_id, info, uv=False):
    ad = att.auth_data
    check(ad.rp_id_hash == sha256(rp_id.encode()), "rpIdHash")
    check(ad.is_user_present(), "UP flag not set")
    check(ad.is_attested(), "AT flag not set")
    check(ad.is_user_verified() == uv, "UV flag %s, want %s" % (ad.is_user_verified(), uv))
    cd = ad.credential_data
    check(cd.aaguid == info.aaguid, "AAGUID in authData differs from getInfo")
    if info.max_cred_id_length:
        check(len(cd.credential_id) <= info.max_cred_id_length, "credential ID of %d bytes" % len(cd.credential_id))
    if att.fmt == "packed":
        PackedAttestation().verify(att.att_statement, ad, cdh)
        if len(att.att_statement.get("x5c", [])) > 1:
            verify_x509_chain(att.att_statement["x5c"])
    else:
        check(att.fmt == "none" and att.att_statement == {}, "attestation format %r" % att.fmt)
    return cd


def verify_assertion(a, cdh, rp_id, pub, cred_id=None, uv=False):
    ad = a.auth_data
    check(ad.rp_id_hash == sha256(rp_id.encode()), "rpIdHash")
    check(ad.is_user_present(), "UP flag not set")
    check(ad.is_user_verified() == uv, "UV flag %s, want %s" % (ad.is_user_verified(), uv))
    if cred_id is not None:
        check(a.credential["id"] == cred_id, "assertion for another credential")
    a.verify(cdh, pub)  # raises InvalidSignature
    return ad.counter


def make(s, ctap, rp_id, user_id, rk=False, uv=False, ext=None, alg=-7):
    """makeCredential (with a PIN token when uv), verified; records discoverable credentials."""
    cdh, rp, user, params = new_credential_args(rp_id, user_id, alg)
    param = proto = None
    if uv:
        pp, tok = pin_token(s, ctap, P.MAKE_CREDENTIAL, rp_id)
        param, proto = pp.authenticate(tok, cdh), pp.VERSION
    att = ctap.make_credential(cdh, rp, user, params, None, ext, {"rk": True} if rk else None, param, proto)
    cd = verify_att(att, cdh, rp_id, ctap.info, uv)
    if rk:
        s.resident[(rp_id, user_id)] = (cd.credential_id, cd.public_key)
    return att, cd


# ---- Ctap2 ------------------------------------------------------------------------------------


def op_get_info(s):
    ctap = ctap2_of(s, 0x04)
    i = ctap.info
    check("FIDO_2_0" in i.versions, "versions %s" % i.versions)
    check(len(i.aaguid) == 16 and i.aaguid != b"\0" * 16, "AAGUID")
    check(i.options.get("up") is True and i.options.get("plat") is False, "options up/plat")
    check(i.max_msg_size >= 1024, "maxMsgSize %d" % i.max_msg_size)
    if "FIDO_2_1" in i.versions:  # transports (0x09) came with CTAP 2.1
        check("usb" in i.transports, "transports %s" % i.transports)
    check(-7 in [a["alg"] for a in (i.algorithms or [{"alg": -7}])], "ES256 missing from algorithms")
    if "clientPin" in i.options:
        check(i.pin_uv_protocols, "clientPin without pinUvAuthProtocols")
    check(i.options.get("clientPin") in (None, False), "a fresh key has a PIN")
    return "versions %s, protocols %s, extensions %s" % (i.versions, i.pin_uv_protocols, i.extensions)


def op_make_credential(s):
    ctap = ctap2_of(s, 0x01)
    att, cd = make(s, ctap, "mc.example", b"mc-user")
    s.mc = (cd.credential_id, cd.public_key)
    return "fmt %s, %d-byte credential ID, attestation verified" % (att.fmt, len(cd.credential_id))


def op_make_credential_eddsa(s):
    ctap = ctap2_of(s, 0x01)
    algs = [a["alg"] for a in (ctap.info.algorithms or [])]
    if -8 not in algs:
        code = expect_ctap_error([E.UNSUPPORTED_ALGORITHM], make, s, ctap, "ed.example", b"ed", alg=-8)
        raise Unsupported("EdDSA not in getInfo algorithms; makeCredential answered %s" % err_name(code))
    _, cd = make(s, ctap, "ed.example", b"ed", alg=-8)
    check(cd.public_key[3] == -8, "public key alg %s" % cd.public_key.get(3))
    cdh = os.urandom(32)
    a = ctap.get_assertion("ed.example", cdh, [desc(cd.credential_id)])
    verify_assertion(a, cdh, "ed.example", cd.public_key, cd.credential_id)
    return "Ed25519 credential made, assertion verified"


def op_get_assertion(s):
    ctap = ctap2_of(s, 0x02)
    cid, pub = s.mc
    counters = []
    foreign = [desc(os.urandom(len(cid))), desc(os.urandom(16))]
    for allow in ([desc(cid)], foreign + [desc(cid)]):
        cdh = os.urandom(32)
        a = ctap.get_assertion("mc.example", cdh, allow)
        counters.append(verify_assertion(a, cdh, "mc.example", pub, cid))
    check(counters[1] > counters[0], "signature counter %s did not increase" % counters)
    code = expect_ctap_error([E.NO_CREDENTIALS], ctap.get_assertion, "mc.example", os.urandom(32), foreign)
    code2 = expect_ctap_error([E.NO_CREDENTIALS], ctap.get_assertion, "other.example", os.urandom(32), [desc(cid)])
    return "2 assertions verified (one among foreign IDs), counters %s; unknown IDs: %s, other RP: %s" % (
        counters, err_name(code), err_name(code2))


def op_resident(s):
    ctap = ctap2_of(s, 0x01)
    users = [b"user-1", b"user-1-extended", b"user-2"]  # a shared prefix must not merge users
    for u in users:
        make(s, ctap, "rk.example", u, rk=True)
    make(s, ctap, "rk.example", b"user-1", rk=True)  # same user.id replaces its credential
    cdh = os.urandom(32)
    got = ctap.get_assertions("rk.example", cdh)
    check(len(got) == 3, "%d assertions for 3 users" % len(got))
    check(got[0].number_of_credentials == 3, "numberOfCredentials %s" % got[0].number_of_credentials)
    seen = set()
    for a in got:
        uid = a.user["id"]
        cid, pub = s.resident[("rk.example", uid)]
        verify_assertion(a, cdh, "rk.example", pub, cid)
        seen.add(uid)
    check(seen == set(users), "users %s" % sorted(seen))
    return "3 discoverable credentials (one replaced), getNextAssertion walked all, signatures verified"


def op_selection(s):
    ctap = ctap2_of(s, 0x0B)
    if "FIDO_2_1" not in ctap.info.versions:
        raise Unsupported("CTAP 2.0 key: selection answered %s" % probe_cbor(s, 0x0B))
    ctap.selection()
    return "user presence given"


# ---- ClientPin --------------------------------------------------------------------------------


def protocol_or_unsupported(s, ctap, proto):
    if proto.VERSION in ctap.info.pin_uv_protocols:
        return
    code = expect_ctap_error([E.INVALID_PARAMETER], ctap.client_pin, proto.VERSION, ClientPin.CMD.GET_KEY_AGREEMENT)
    raise Unsupported("PIN protocol %d not in getInfo; clientPin answered %s" % (proto.VERSION, err_name(code)))


def op_set_pin(s):
    ctap = ctap2_of(s, 0x06)
    cp = ClientPin(ctap)
    # Without a PIN, current keys answer getPINRetries with PIN_NOT_SET, older ones with 8
    # (persona quirk pinRetriesWithoutPin); the Go test checks which one this persona gave.
    try:
        retries, _ = cp.get_pin_retries()
        check(retries == 8, "%d PIN retries before a PIN is set" % retries)
        before = "8 retries"
    except CtapError as e:
        check(e.code == E.PIN_NOT_SET, "getPINRetries without a PIN: %s" % err_name(e.code))
        before = "PIN_NOT_SET"
    expect_ctap_error([E.PIN_NOT_SET], cp.get_pin_token, PIN1, P.GET_ASSERTION, "pin.example")
    cp.set_pin(PIN1)
    s.pin = PIN1
    check(ctap.get_info().options.get("clientPin") is True, "clientPin option still false")
    # CTAP 2.1 §6.5.5.5 step 3 (as 2.0): setPIN on a key with a PIN is CTAP2_ERR_PIN_AUTH_INVALID.
    code = expect_ctap_error([E.PIN_AUTH_INVALID], cp.set_pin, PIN2)
    return "getPINRetries before setPIN: %s; set with protocol %d; second setPIN: %s" % (
        before, cp.protocol.VERSION, err_name(code))


def pin_protocol_op(proto_cls):
    def op(s):
        ctap = ctap2_of(s, 0x06)
        proto = proto_cls()
        protocol_or_unsupported(s, ctap, proto)
        cp = ClientPin(ctap, proto)
        tok = cp.get_pin_token(s.pin, P.MAKE_CREDENTIAL | P.GET_ASSERTION, "pin.example")
        check(len(tok) in ((16, 32) if proto.VERSION == 1 else (32,)), "token of %d bytes" % len(tok))
        expect_ctap_error([E.PIN_INVALID], cp.get_pin_token, "00000000", P.GET_ASSERTION, "pin.example")
        retries, _ = cp.get_pin_retries()
        check(retries == 7, "%d retries after one wrong PIN" % retries)
        cp.get_pin_token(s.pin, P.GET_ASSERTION, "pin.example")
        retries, _ = cp.get_pin_retries()
        check(retries == 8, "%d retries after the right PIN" % retries)
        # The token authenticates a request only under the protocol that made it.
        _, tok = pin_token(s, ctap, P.MAKE_CREDENTIAL, "pin.example", proto)
        cdh, rp, user, params = new_credential_args("pin.example", b"pin-user")
        att = ctap.make_credential(cdh, rp, user, params, None, None, None, proto.authenticate(tok, cdh), proto.VERSION)
        verify_att(att, cdh, "pin.example", ctap.info, uv=True)
        # change the PIN under this protocol, and back
        new = PIN2 if s.pin != PIN2 else PIN1
        cp.change_pin(s.pin, new)
        expect_ctap_error([E.PIN_INVALID], cp.get_pin_token, s.pin, P.GET_ASSERTION, "pin.example")
        s.pin = new
        cp.get_pin_token(s.pin, P.GET_ASSERTION, "pin.example")
        return "%d-byte token; wrong PIN counted and cleared; UV makeCredential verified; PIN changed" % len(tok)
    return op


def op_permissions(s):
    ctap = ctap2_of(s, 0x06)
    if not ctap.info.options.get("pinUvAuthToken"):
        code = expect_ctap_error([INVALID_SUBCOMMAND, E.INVALID_PARAMETER, E.INVALID_COMMAND], ctap.client_pin,
                                 ctap.info.pin_uv_protocols[0], ClientPin.CMD.GET_TOKEN_USING_PIN)
        raise Unsupported("no pinUvAuthToken option; subcommand 0x09 answered %s" % err_name(code))
    cdh, rp, user, params = new_credential_args("perm.example", b"perm")
    pp, tok = pin_token(s, ctap, P.GET_ASSERTION, "perm.example")
    c1 = expect_ctap_error([E.PIN_AUTH_INVALID], ctap.make_credential, cdh, rp, user, params, None, None, None,
                           pp.authenticate(tok, cdh), pp.VERSION)
    pp, tok = pin_token(s, ctap, P.MAKE_CREDENTIAL, "other.example")
    c2 = expect_ctap_error([E.PIN_AUTH_INVALID], ctap.make_credential, cdh, rp, user, params, None, None, None,
                           pp.authenticate(tok, cdh), pp.VERSION)
    expect_ctap_error([E.MISSING_PARAMETER, E.INVALID_PARAMETER], ctap.client_pin, pp.VERSION,
                      ClientPin.CMD.GET_TOKEN_USING_PIN, permissions=0)  # no key agreement, no PIN
    pp, tok = pin_token(s, ctap, P.MAKE_CREDENTIAL, "perm.example")
    att = ctap.make_credential(cdh, rp, user, params, None, None, None, pp.authenticate(tok, cdh), pp.VERSION)
    verify_att(att, cdh, "perm.example", ctap.info, uv=True)
    return "ga-only token for makeCredential: %s; token for another RP: %s; right token: UV credential" % (
        err_name(c1), err_name(c2))


def op_pin_required(s):
    ctap = ctap2_of(s, 0x01)
    code = expect_ctap_error([PUAT_REQUIRED], make, s, ctap, "rk.example", b"needs-pin", rk=True)
    cdh = os.urandom(32)
    pp, tok = pin_token(s, ctap, P.GET_ASSERTION, "mc.example")
    a = ctap.get_assertion("mc.example", cdh, [desc(s.mc[0])], None, None, pp.authenticate(tok, cdh), pp.VERSION)
    verify_assertion(a, cdh, "mc.example", s.mc[1], s.mc[0], uv=True)
    expect_ctap_error([E.PIN_AUTH_INVALID], ctap.get_assertion, "mc.example", cdh, [desc(s.mc[0])], None, None,
                      pp.authenticate(tok, os.urandom(32)), pp.VERSION)
    return "discoverable makeCredential without PIN: %s; getAssertion with PIN: UV, verified" % err_name(code)


# ---- extensions -------------------------------------------------------------------------------


def extension_or_unsupported(s, ctap, name, ext_input):
    if name in ctap.info.extensions:
        return
    # A key ignores an extension it does not support (CTAP 2.1 §12): no error, no output.
    att, _ = make(s, ctap, "noext.example", b"noext", uv=bool(s.pin), ext={name: ext_input})
    check(not (att.auth_data.extensions or {}).get(name), "%s output from a key that does not list it" % name)
    raise Unsupported("%s not in getInfo extensions; the key ignored it (no output, as CTAP requires)" % name)


def hmac_op(proto_cls):
    def op(s):
        ctap = ctap2_of(s, 0x01)
        extension_or_unsupported(s, ctap, "hmac-secret", True)
        proto = proto_cls()
        protocol_or_unsupported(s, ctap, proto)
        rp_id = "hmac%d.example" % proto.VERSION
        att, cd = make(s, ctap, rp_id, b"hmac-user", uv=True, ext={"hmac-secret": True})
        check(att.auth_data.extensions == {"hmac-secret": True}, "create output %s" % att.auth_data.extensions)

        def get(salts, uv):
            ext = HmacSecretExtension(ctap, proto)
            inp = {"salt1": salts[0]}
            if len(salts) > 1:
                inp["salt2"] = salts[1]
            ext_in = ext.process_get_input({"hmacGetSecret": inp})
            cdh = os.urandom(32)
            param = ver = None
            if uv:
                pp, tok = pin_token(s, ctap, P.GET_ASSERTION, rp_id, proto)
                param, ver = pp.authenticate(tok, cdh), pp.VERSION
            a = ctap.get_assertion(rp_id, cdh, [desc(cd.credential_id)], {"hmac-secret": ext_in}, None, param, ver)
            verify_assertion(a, cdh, rp_id, cd.public_key, cd.credential_id, uv=uv)
            out = ext.process_get_output(a.auth_data)["hmacGetSecret"]
            check(len(out["output1"]) == 32, "output1 of %d bytes" % len(out["output1"]))
            return out

        s1, s2 = os.urandom(32), os.urandom(32)
        a = get([s1], False)
        check(get([s1], False)["output1"] == a["output1"], "same salt, different output")
        b = get([s1, s2], False)
        check(b["output1"] == a["output1"], "output1 changed when salt2 was added")
        check(len(b.get("output2", b"")) == 32 and b["output2"] != b["output1"], "output2 missing or equal to output1")
        u = get([s1], True)
        check(u["output1"] != a["output1"], "the same output with and without UV")
        check(get([s1], True)["output1"] == u["output1"], "same salt with UV, different output")
        return "equal for equal salts, salt2 distinct, UV and non-UV outputs differ"
    return op


def op_cred_blob(s):
    ctap = ctap2_of(s, 0x01)
    extension_or_unsupported(s, ctap, "credBlob", b"x")
    n = ctap.info.max_cred_blob_length or 32
    blob = os.urandom(n)
    att, cd = make(s, ctap, "blob.example", b"cb-user", rk=True, uv=True, ext={"credBlob": blob})
    check(att.auth_data.extensions == {"credBlob": True}, "create output %s" % att.auth_data.extensions)
    cdh = os.urandom(32)
    a = ctap.get_assertion("blob.example", cdh, [desc(cd.credential_id)], {"credBlob": True})
    verify_assertion(a, cdh, "blob.example", cd.public_key, cd.credential_id)
    check(a.auth_data.extensions == {"credBlob": blob}, "credBlob read back differs")
    att, _ = make(s, ctap, "blob.example", b"cb-long", rk=True, uv=True, ext={"credBlob": os.urandom(n + 1)})
    check(att.auth_data.extensions == {"credBlob": False}, "oversize credBlob output %s" % att.auth_data.extensions)
    return "%d-byte blob read back equal; %d bytes refused with credBlob=false" % (n, n + 1)


# ---- Fido2Client ------------------------------------------------------------------------------


class ChainVerifier(AttestationVerifier):
    """Trusts the root the key sends: this checks the chain's signatures, not who issued it."""

    def ca_lookup(self, result, auth_data):
        return result.trust_path[-1:] if len(result.trust_path) > 1 else []


def client_pair():
    server = Fido2Server({"id": RP, "name": "Example RP"}, attestation="direct", verify_attestation=ChainVerifier())
    return server


def op_client_make_get(s):
    client = Fido2Client(s.dev, ORIGIN)  # falls back to CTAP1 on a U2F-only key
    server = client_pair()
    uv = "required" if s.pin else "discouraged"
    user = {"id": b"client-user", "name": "alice", "displayName": "Alice"}
    opts, state = server.register_begin(user, user_verification=uv)
    res = client.make_credential(opts["publicKey"], pin=s.pin)
    ad = server.register_complete(state, res.client_data, res.attestation_object)
    creds = [ad.credential_data]
    counters = []
    for _ in range(2):
        req, state = server.authenticate_begin(creds, user_verification=uv)
        r = client.get_assertion(req["publicKey"], pin=s.pin).get_response(0)
        server.authenticate_complete(state, creds, r.credential_id, r.client_data, r.authenticator_data, r.signature)
        counters.append(r.authenticator_data.counter)
    check(counters[1] > counters[0], "counters %s" % counters)
    via = "CTAP2" if getattr(client, "ctap2", None) else "CTAP1"
    return "via %s, fmt %s, registration and 2 assertions verified by Fido2Server" % (via, res.attestation_object.fmt)


def op_client_extensions(s):
    ctap = ctap2_of(s, 0x01)
    exts = ctap.info.extensions
    hmac, blob_ok = "hmac-secret" in exts, "credBlob" in exts
    if not (hmac or blob_ok):
        extension_or_unsupported(s, ctap, "hmac-secret", True)
    client = Fido2Client(s.dev, ORIGIN)
    server = client_pair()
    user = {"id": b"ext-user", "name": "bob", "displayName": "Bob"}
    opts, state = server.register_begin(user, resident_key=True, user_verification="required")
    blob = os.urandom(min(16, ctap.info.max_cred_blob_length or 16))
    opts["publicKey"].extensions = {"hmacCreateSecret": True, "credBlob": blob}
    res = client.make_credential(opts["publicKey"], pin=s.pin)
    ad = server.register_complete(state, res.client_data, res.attestation_object)
    s.resident[(RP, user["id"])] = (ad.credential_data.credential_id, ad.credential_data.public_key)
    outs = ad.extensions or {}
    if hmac:
        check(res.extension_results.get("hmacCreateSecret") is True, "hmacCreateSecret %s" % res.extension_results)
    if blob_ok:
        check(outs.get("credBlob") is True, "credBlob create output %s" % outs)
    creds = [ad.credential_data]
    salt = os.urandom(32)
    got = []
    for _ in range(2):
        req, state = server.authenticate_begin(creds, user_verification="required")
        req["publicKey"].extensions = {"hmacGetSecret": {"salt1": salt}, "getCredBlob": True}
        r = client.get_assertion(req["publicKey"], pin=s.pin).get_response(0)
        server.authenticate_complete(state, creds, r.credential_id, r.client_data, r.authenticator_data, r.signature)
        if hmac:
            got.append(r.extension_results["hmacGetSecret"]["output1"])
        if blob_ok:
            check((r.authenticator_data.extensions or {}).get("credBlob") == blob, "credBlob read back differs")
    if hmac:
        check(len(got[0]) == 32 and got[0] == got[1], "hmac-secret outputs differ for the same salt")
    checked = [n for n, ok in (("hmac-secret", hmac), ("credBlob", blob_ok)) if ok]
    return "discoverable, UV by PIN; checked %s" % "+".join(checked)


OPERATIONS = [
    ("ctap2.get_info", op_get_info),
    ("ctap2.make_credential", op_make_credential),
    ("ctap2.make_credential_eddsa", op_make_credential_eddsa),
    ("ctap2.get_assertion", op_get_assertion),
    ("ctap2.resident_credentials", op_resident),
    ("ctap2.selection", op_selection),
    ("fido2_client.make_get_no_pin", op_client_make_get),
    ("client_pin.set_pin", op_set_pin),
    ("client_pin.protocol_1", pin_protocol_op(PinProtocolV1)),
    ("client_pin.protocol_2", pin_protocol_op(PinProtocolV2)),
    ("client_pin.permissions", op_permissions),
    ("ctap2.uv_by_pin", op_pin_required),
    ("hmac_secret.protocol_1", hmac_op(PinProtocolV1)),
    ("hmac_secret.protocol_2", hmac_op(PinProtocolV2)),
    ("cred_blob", op_cred_blob),
    ("fido2_client.make_get_pin", op_client_make_get),
    ("fido2_client.hmac_secret_cred_blob", op_client_extensions),
]

#!/usr/bin/python3
"""python-fido2 (Debian python3-fido2 0.9.1) as a peer of the fidolab key.

Usage: pyfido2_peer.py SOCKET_PATH CONTROL_URL PERSONA

Connects to the key's report socket (raw 64-byte CTAPHID reports, no report ID), runs python-fido2's
CTAPHID, CTAP1 and CTAP2 layers against it and prints one JSON row per operation on stdout:
{"client": "python-fido2", "operation": ..., "persona": ..., "result": pass|fail|unsupported,
"detail": ...}. "unsupported" is only printed after the key answered a probe of the missing
feature with the CTAP error a client expects; a hang is a failure (every operation has a timeout).

It must run under Debian's /usr/bin/python3: that is where python3-fido2 is installed.
The CTAP2 operations live in pyfido2_ctap2.py next to this file.
"""

import json
import os
import signal
import socket
import struct
import sys
import threading
import time
import traceback
import urllib.request

from fido2.ctap import CtapError
from fido2.ctap1 import APDU, ApduError, Ctap1
from fido2.hid import CAPABILITY, CTAPHID, CtapHidDevice
from fido2.hid.base import CtapHidConnection, HidDescriptor
from fido2.utils import sha256

CLIENT = "python-fido2"
REPORT = 64
KEEPALIVE = 0x80 | CTAPHID.KEEPALIVE
READ_TIMEOUT = 8.0  # seconds of silence before a read fails: the key sends keepalives every 100 ms
OP_TIMEOUT = 45  # hard bound on one operation (bio enrollment and PIN work take a few seconds)
MAX_PING = 7609  # 57 + 128 * 59: the largest CTAPHID message


class Fail(Exception):
    """A check on the key's answer did not hold."""


class Unsupported(Exception):
    """The persona lacks the feature and the key said so the way a client expects."""


class OpTimeout(Exception):
    """An operation ran past OP_TIMEOUT."""


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def err_name(code):
    try:
        return CtapError.ERR(code).name
    except ValueError:
        return "0x%02X" % code


def expect_ctap_error(codes, fn, *args, **kwargs):
    """Runs fn, which must fail with a CtapError whose code is in codes; returns the code."""
    try:
        fn(*args, **kwargs)
    except CtapError as e:
        check(e.code in codes, "got %s, want %s" % (err_name(e.code), "/".join(err_name(c) for c in codes)))
        return e.code
    raise Fail("succeeded, want %s" % "/".join(err_name(c) for c in codes))


class SocketConnection(CtapHidConnection):
    """One open handle on the key: raw 64-byte reports over a Unix stream socket."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(READ_TIMEOUT)
        self.sock.connect(path)
        self.keepalives = 0
        self.keepalive_status = []

    def write_packet(self, data):
        data = bytes(data)
        if len(data) != REPORT:
            raise ValueError("report of %d bytes, want %d" % (len(data), REPORT))
        self.sock.sendall(data)

    def read_packet(self):
        buf = bytearray()
        while len(buf) < REPORT:
            chunk = self.sock.recv(REPORT - len(buf))
            if not chunk:
                raise OSError("the key closed the socket")
            buf += chunk
        # python-fido2 reports a keepalive to its callback only when the status changes, so the
        # raw count comes from here.
        if buf[4] == KEEPALIVE:
            self.keepalives += 1
            self.keepalive_status.append(buf[7])
        return bytes(buf)

    def close(self):
        self.sock.close()


class Session:
    """The peer's view of one key: connection, device and what it created on the key."""

    def __init__(self, sock_path, control_url, persona):
        self.sock_path = sock_path
        self.control_url = control_url.rstrip("/")
        self.persona = persona
        self.conn = None
        self.dev = None
        self.pin = None  # the PIN currently set on the key (None: no PIN)
        # (rp_id, user_id) -> (credential_id, public key): discoverable credentials made so far
        self.resident = {}
        self.ctap2_ok = False
        self.open()

    def open(self):
        self.close()
        self.conn = SocketConnection(self.sock_path)
        desc = HidDescriptor(self.sock_path, 0x1209, 0xF1D0, REPORT, REPORT)
        self.dev = CtapHidDevice(desc, self.conn)

    def close(self):
        if self.dev is not None:
            try:
                self.dev.close()
            except OSError:
                pass
        self.dev = None
        self.conn = None

    def control(self, path):
        with urllib.request.urlopen(self.control_url + path, timeout=5) as r:
            check(r.status == 200, "control %s: HTTP %d" % (path, r.status))
            return json.loads(r.read().decode() or "{}")

    def emit(self, op, result, detail=""):
        row = {"client": CLIENT, "operation": op, "persona": self.persona, "result": result, "detail": detail}
        print(json.dumps(row), flush=True)

    def run(self, op, fn):
        """Runs one operation under a hard timeout and prints its row."""
        def on_alarm(signum, frame):
            raise OpTimeout("no answer within %d s" % OP_TIMEOUT)

        old = signal.signal(signal.SIGALRM, on_alarm)
        signal.alarm(OP_TIMEOUT)
        try:
            detail = fn(self) or ""
            signal.alarm(0)
            self.emit(op, "pass", detail)
        except Unsupported as e:
            signal.alarm(0)
            self.emit(op, "unsupported", str(e))
        except Exception as e:  # every failure becomes a row, and the next operation goes on
            signal.alarm(0)
            self.emit(op, "fail", describe(e))
            try:
                self.control("/usb0/touch/on")
                self.open()  # a failed exchange may leave a half-read answer on the socket
            except Exception as e2:
                self.emit(op + ".reopen", "fail", describe(e2))
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)


def describe(e):
    if isinstance(e, CtapError):
        return "CtapError %s" % err_name(e.code)
    if isinstance(e, ApduError):
        return "ApduError 0x%04X" % e.code
    if isinstance(e, (Fail, OpTimeout)):
        return str(e)
    tb = traceback.extract_tb(e.__traceback__)
    where = ("%s:%d" % (os.path.basename(tb[-1].filename), tb[-1].lineno)) if tb else "?"
    return "%s: %s (at %s)" % (type(e).__name__, e, where)


def probe_cbor(s, cmd, payload=b""):
    """Asks a key that lacks a CTAP2 feature for it with a raw CTAPHID_CBOR request; the expected
    refusal is CTAP1_ERR_INVALID_COMMAND (for a U2F-only key, the CTAPHID command itself is
    unknown; for a CTAP2 key, the CBOR command byte is)."""
    def call():
        resp = s.dev.call(CTAPHID.CBOR, bytes([cmd]) + payload)  # CTAPHID errors raise here
        check(len(resp) >= 1, "empty CBOR response")
        if resp[0] != 0:
            raise CtapError(resp[0])  # the CTAP status byte of a CBOR response

    return err_name(expect_ctap_error([CtapError.ERR.INVALID_COMMAND], call))


def require_ctap2(s, cmd):
    if not s.ctap2_ok:
        raise Unsupported("no CTAP2: CBOR command 0x%02X answered %s" % (cmd, probe_cbor(s, cmd)))


# ---- CTAPHID ----------------------------------------------------------------------------------


def op_hid_init(s):
    d = s.dev
    check(d.version == 2, "CTAPHID protocol version %d, want 2" % d.version)
    check(d.capabilities & CAPABILITY.WINK, "WINK capability missing")
    cbor = bool(d.capabilities & CAPABILITY.CBOR)
    nmsg = bool(d.capabilities & CAPABILITY.NMSG)
    check(not (nmsg and not cbor), "NMSG without CBOR: the key would speak nothing")
    s.ctap2_ok = cbor
    # A second device on the same socket gets its own channel.
    other = CtapHidDevice(HidDescriptor(s.sock_path, 0x1209, 0xF1D0, REPORT, REPORT), SocketConnection(s.sock_path))
    try:
        check(other._channel_id != d._channel_id, "two INITs got the same channel")
        check(other.ping(b"second") == b"second", "ping on the second channel")
    finally:
        other.close()
    return "caps=0x%02X cbor=%s nmsg=%s device=%s" % (d.capabilities, cbor, nmsg, ".".join(map(str, d.device_version)))


def op_hid_ping(s):
    sizes = [0, 1, 57, 58, 59, 116, 117, 1024, 4096, MAX_PING - 1, MAX_PING]
    for n in sizes:
        msg = os.urandom(n)
        got = s.dev.ping(msg)
        check(got == msg, "ping of %d bytes echoed %d bytes%s" % (n, len(got), "" if len(got) != n else " (different)"))
    return "echoed %s bytes" % ",".join(map(str, sizes))


def op_hid_ping_oversize(s):
    # 7610 bytes cannot be framed (the sequence number would wrap): the key must refuse the init
    # packet with ERR_INVALID_LEN and ignore the continuation packets that python-fido2 still sends.
    code = expect_ctap_error([CtapError.ERR.INVALID_LENGTH], s.dev.ping, os.urandom(MAX_PING + 1))
    check(s.dev.ping(b"after") == b"after", "channel unusable after the oversize ping")
    return "refused with %s, channel still usable" % err_name(code)


def op_hid_wink(s):
    t = time.monotonic()
    s.dev.wink()
    return "answered in %.0f ms" % ((time.monotonic() - t) * 1000)


def op_hid_cancel(s):
    from pyfido2_ctap2 import new_credential_args
    require_ctap2(s, 0x01)
    from fido2.ctap2 import Ctap2
    ctap = Ctap2(s.dev)
    s.control("/usb0/touch/off")
    event = threading.Event()
    timer = threading.Timer(0.3, event.set)
    t0 = time.monotonic()
    timer.start()
    try:
        code = expect_ctap_error([CtapError.ERR.KEEPALIVE_CANCEL], ctap.make_credential, *new_credential_args("cancel.example", b"cancel"), event=event)
    finally:
        timer.cancel()
        s.control("/usb0/touch/on")
    took = time.monotonic() - t0 - 0.3
    check(took < 0.5, "cancel answered %.0f ms after CANCEL, want < 500 ms" % (took * 1000))
    check(ctap.get_info().versions, "channel unusable after cancel")
    return "%s %.0f ms after CANCEL" % (err_name(code), took * 1000)


def op_hid_keepalive(s):
    from pyfido2_ctap2 import new_credential_args
    require_ctap2(s, 0x01)
    from fido2.ctap2 import Ctap2
    ctap = Ctap2(s.dev)
    wait = 1.0
    s.control("/usb0/touch/off")
    seen = []
    s.conn.keepalives, s.conn.keepalive_status = 0, []
    timer = threading.Timer(wait, s.control, ["/usb0/touch/on"])
    t0 = time.monotonic()
    timer.start()
    try:
        att = ctap.make_credential(*new_credential_args("keepalive.example", b"ka"), on_keepalive=seen.append)
    finally:
        timer.cancel()
        s.control("/usb0/touch/on")
    took = time.monotonic() - t0
    check(took >= wait * 0.9, "answered after %.2f s, before the touch at %.1f s" % (took, wait))
    check(att.auth_data.is_user_present(), "UP flag not set")
    n = s.conn.keepalives
    check(n >= 5, "%d keepalives in %.1f s, want one per ~100 ms" % (n, took))
    check(2 in s.conn.keepalive_status, "no keepalive with STATUS_UPNEEDED (2): %s" % sorted(set(s.conn.keepalive_status)))
    check(len(seen) >= 1, "python-fido2 called on_keepalive 0 times")
    return "%d keepalives (statuses %s) in %.2f s, %d callbacks %s" % (
        n, sorted(set(s.conn.keepalive_status)), took, len(seen), [int(x) for x in seen])


# ---- CTAP1 / U2F ------------------------------------------------------------------------------


def op_u2f(s):
    ctap1 = Ctap1(s.dev)
    try:
        version = ctap1.get_version()
    except ApduError as e:
        raise Fail("U2F version: ApduError 0x%04X" % e.code)
    except CtapError as e:
        if e.code == CtapError.ERR.INVALID_COMMAND:
            raise Unsupported("no U2F: CTAPHID_MSG answered INVALID_COMMAND")
        raise
    check(version == "U2F_V2", "version %r" % version)
    app, chal = sha256(b"https://u2f.example"), os.urandom(32)
    reg = ctap1.register(chal, app)
    reg.verify(app, chal)  # attestation signature over the registration
    from fido2.cose import ES256
    pub = ES256.from_ctap1(reg.public_key)
    counters = []
    for _ in range(2):
        c = os.urandom(32)
        sig = ctap1.authenticate(c, app, reg.key_handle)
        sig.verify(app, c, reg.public_key)
        check(sig.user_presence & 1, "user presence bit not set")
        counters.append(sig.counter)
    check(counters[1] > counters[0], "counter did not increase: %s" % counters)
    try:
        ctap1.authenticate(chal, app, reg.key_handle, check_only=True)
        raise Fail("check-only of a known handle succeeded")
    except ApduError as e:
        check(e.code == APDU.USE_NOT_SATISFIED, "check-only of a known handle: 0x%04X, want 6985" % e.code)
    try:
        ctap1.authenticate(chal, sha256(b"other"), reg.key_handle, check_only=True)
        raise Fail("check-only under another app id succeeded")
    except ApduError as e:
        check(e.code == APDU.WRONG_DATA, "check-only under another app id: 0x%04X, want 6A80" % e.code)
    check(pub is not None, "public key")
    return "register+2 authenticates verified, counters %s" % counters


def main(argv):
    if len(argv) != 4:
        print("usage: pyfido2_peer.py SOCKET_PATH CONTROL_URL PERSONA", file=sys.stderr)
        return 2
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    # pyfido2_ctap2 imports this file by name; make that the running module, not a second copy
    # (whose Fail and Unsupported would be other classes).
    sys.modules.setdefault("pyfido2_peer", sys.modules[__name__])
    import pyfido2_ctap2
    import pyfido2_mgmt

    try:
        s = Session(argv[1], argv[2], argv[3])
    except Exception as e:
        print(json.dumps({"client": CLIENT, "operation": "hid.init", "persona": argv[3], "result": "fail",
                          "detail": describe(e)}), flush=True)
        return 1
    ops = [
        ("hid.init", op_hid_init),
        ("hid.ping", op_hid_ping),
        ("hid.ping_oversize", op_hid_ping_oversize),
        ("hid.wink", op_hid_wink),
        ("hid.cancel", op_hid_cancel),
        ("hid.keepalive", op_hid_keepalive),
        ("u2f.register_authenticate", op_u2f),
    ] + pyfido2_ctap2.OPERATIONS + pyfido2_mgmt.OPERATIONS
    for name, fn in ops:
        s.run(name, fn)
    s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

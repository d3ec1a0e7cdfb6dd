"""End-to-end security tests: no handler dials before the client authenticated (issue 11 part 1).

Spec: docs/PROTOCOLS.md "core: auto" (the TLS pass-through exists only without auth),
"core: authentication" (per-handler failure responses), "http: authentication", "http: UDP",
"socks5", "relay: handler".

Every path that reaches the router (or opens a listener / UDP socket for the client) is tried on a
service with auth, without credentials and with wrong ones, with the request and payload pipelined
behind the credentials (a handler that skipped the check would act on them at once). Each must fail
with the protocol's own error and the counting target servers must see ZERO connections /
datagrams (BIND/MBIND: the requested port must stay unbound). Each path family also has a positive
control with the right credentials, so the counters are shown to work.

The `auto` TLS pass-through test binds a TLS/HTTP server on 127.0.0.1:443 (root, as in CI) and
skips if that port cannot be bound.

Run: /usr/bin/python3 tests/e2e/test_auth_paths.py <path-to-gost>
"""

import errno
import hashlib
import os
import socket
import ssl
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gostlib  # noqa: E402
from gostlib import (LOOPBACK, RESP_200_CONNECT, RESP_407, basic, client_hello, connect, curl,  # noqa: E402
                     free_port, make_self_signed, port_closed_for_connect, recv_exact,
                     recv_http_head, recv_until_close, start_gost_in, temp_dir, tls_connect,
                     wait_until)

USER, PASS = "user", "pass"
SETTLE = 0.4  # time a (wrongly) dialed connection / datagram would need to show up


# --------------------------------------------------------------------------
# target servers that count
# --------------------------------------------------------------------------

class CountingTCPServer:
    """TCP server on 127.0.0.1 counting accepted connections (in the accept loop itself). A
    connection starting with "GET " gets a small HTTP response; anything else is echoed."""

    BODY = b"target-ok"

    def __init__(self):
        self.lock = threading.Lock()
        self.accepted = 0
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((LOOPBACK, 0))
        self.lsock.listen(64)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.addr = "%s:%d" % (LOOPBACK, self.port)
        self._stop = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self._stop:
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.accepted += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        c.settimeout(15)
        try:
            buf = c.recv(65536)
            if buf.startswith(b"GET "):
                while b"\r\n\r\n" not in buf and len(buf) < 65536:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                          % len(self.BODY) + self.BODY)
                return
            while buf:
                c.sendall(buf)
                buf = c.recv(65536)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self._stop = True
        self.lsock.close()


class HTTPS443Server(gostlib.TLSRecordingServer):
    """TLSRecordingServer (accepted / snis / handshakes counters) that answers one HTTP request
    per connection with BODY, so that both curl and a raw TLS client see a complete response."""

    BODY = b"hello-from-443"

    def _serve(self, c):
        c.settimeout(15)
        try:
            s = self.ctx.wrap_socket(c, server_side=True)
        except (OSError, ssl.SSLError) as e:
            with self.lock:
                self.errors.append(repr(e))
            c.close()
            return
        with self.lock:
            self.handshakes += 1
        try:
            buf = b""
            while b"\r\n\r\n" not in buf and len(buf) < 65536:
                d = s.recv(65536)
                if not d:
                    return
                buf += d
            with self.lock:
                self.heads.append(buf)
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                      % len(self.BODY) + self.BODY)
        except (OSError, ssl.SSLError):
            pass
        finally:
            try:
                s.close()
            except OSError:
                pass


# --------------------------------------------------------------------------
# wire encodings (independent of the C++ codecs)
# --------------------------------------------------------------------------

def s5_addr(host, port):
    try:
        return b"\x01" + socket.inet_aton(host) + struct.pack(">H", port)
    except OSError:
        return b"\x03" + bytes([len(host)]) + host.encode() + struct.pack(">H", port)


def s5_request(cmd, host, port):
    return bytes([5, cmd, 0]) + s5_addr(host, port)


def rfc1929(user, password):
    return b"\x01" + bytes([len(user)]) + user.encode() + bytes([len(password)]) + password.encode()


def s5_udp_frame(host, port, data):
    """UDP-TUN frame (docs/PROTOCOLS.md "socks5: UDP-TUN", "http: UDP"):
    LEN(2) FRAG=FF ATYP ADDR PORT DATA."""
    return struct.pack(">H", len(data)) + b"\xff" + s5_addr(host, port) + data


def read_s5_reply(s, timeout=10):
    """One SOCKS5 reply: (rep, port) or None when the stream ended first."""
    head = recv_exact(s, 4, timeout)
    if len(head) < 4:
        return None
    n = {1: 4, 4: 16}.get(head[3])
    if n is None:
        n = recv_exact(s, 1, timeout)[0]
    recv_exact(s, n, timeout)
    return head[1], struct.unpack(">H", recv_exact(s, 2, timeout))[0]


def socks4_request(port, userid=b"", domain=None):
    if domain is not None:  # SOCKS4a: IP 0.0.0.x + domain
        return (b"\x04\x01" + struct.pack(">H", port) + b"\x00\x00\x00\x01" + userid + b"\x00"
                + domain.encode() + b"\x00")
    return b"\x04\x01" + struct.pack(">H", port) + socket.inet_aton(LOOPBACK) + userid + b"\x00"


def relay_feat(t, payload):
    return struct.pack("!BH", t, len(payload)) + payload


def relay_auth(user, password):
    return relay_feat(1, bytes([len(user)]) + user.encode() + bytes([len(password)]) + password.encode())


def relay_addr(host, port):
    return relay_feat(2, b"\x01" + socket.inet_aton(host) + struct.pack("!H", port))


def relay_network(n):  # 0 tcp, 1 udp
    return relay_feat(4, struct.pack("!H", n))


def relay_request(cmd, *features):
    body = b"".join(features)
    return struct.pack("!BBH", 1, cmd, len(body)) + body


RELAY_OK = bytes.fromhex("01000000")
RELAY_UNAUTHORIZED = bytes.fromhex("01020000")


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def udp_port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((LOOPBACK, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


# --------------------------------------------------------------------------
# base
# --------------------------------------------------------------------------

class AuthPathsBase(gostlib.GostTestCase):

    def setUp(self):
        self.tcp = self.start_server(CountingTCPServer())
        self.udp = self.start_server(gostlib.UdpEchoServer())

    def gost_service(self, url_fmt, name):
        """Starts gost -L url_fmt % port (HOME in a temp dir: the SOCKS5 TLS methods create the
        default certificate, docs/PROTOCOLS.md "tls: default certificate"); returns the port."""
        port = free_port()
        home = temp_dir(self, "gost-e2e-home-")
        start_gost_in(self, "-L", url_fmt % port, env_extra={"HOME": home}, port=port, name=name)
        time.sleep(0.1)  # the readiness probe's connection is gone
        return port

    def exchange(self, port, data, timeout=8):
        """Sends data on a new connection and reads until gost closes: (reply, closed)."""
        s = connect(port)
        try:
            s.sendall(data)
            reply, closed, _ = recv_until_close(s, timeout=timeout)
        finally:
            s.close()
        return reply, closed

    def assert_rejected(self, port, data, expect, label, prefix=False):
        reply, closed = self.exchange(port, data)
        if prefix:
            self.assertTrue(reply.startswith(expect), "%s: reply %r, want %r..." % (label, reply, expect))
        else:
            self.assertEqual(reply, expect, "%s: reply" % label)
        self.assertTrue(closed, "%s: gost did not close the connection" % label)

    def assert_nothing_reached(self, label):
        time.sleep(SETTLE)
        with self.tcp.lock:
            self.assertEqual(self.tcp.accepted, 0, "%s: the TCP target was dialed" % label)
        self.assertEqual(self.udp.received, [], "%s: a datagram reached the UDP target" % label)

    def assert_echo(self, s, label, n=4096):
        payload = os.urandom(n)
        s.sendall(payload)
        self.assertEqual(recv_exact(s, n, timeout=10), payload, label)


# --------------------------------------------------------------------------
# HTTP: CONNECT, forward proxy, UDP (X-Gost-Protocol: udp)
# --------------------------------------------------------------------------

class HttpAuthPathsTest(AuthPathsBase):
    SCHEME = "http://"

    def setUp(self):
        super().setUp()
        self.port = self.gost_service(self.SCHEME + USER + ":" + PASS + "@127.0.0.1:%d?udp=true",
                                      "http-auth")

    BAD_AUTH = ((None, "no credentials"), (basic(USER, "wrong"), "wrong password"),
                (basic("bob", PASS), "unknown user"), (basic("", ""), "empty user"),
                ("Basic !!notbase64", "undecodable"), ("Bearer " + PASS, "other scheme"))

    def head(self, first_line, auth, extra=""):
        req = first_line + "\r\nHost: %s\r\n" % self.tcp.addr
        if auth:
            req += "Proxy-Authorization: %s\r\n" % auth
        return (req + extra + "\r\n").encode()

    def test_connect(self):
        for auth, label in self.BAD_AUTH:
            self.assert_rejected(self.port, self.head("CONNECT %s HTTP/1.1" % self.tcp.addr, auth) + b"early",
                                 RESP_407, "CONNECT, " + label)
        self.assert_nothing_reached("http CONNECT")
        s = connect(self.port)
        try:
            s.sendall(self.head("CONNECT %s HTTP/1.1" % self.tcp.addr, basic(USER, PASS)))
            self.assertEqual(recv_exact(s, len(RESP_200_CONNECT)), RESP_200_CONNECT)
            self.assert_echo(s, "CONNECT with credentials")
        finally:
            s.close()
        self.assertEqual(self.tcp.accepted, 1)

    def test_forward_proxy_get(self):
        line = "GET http://%s/secret HTTP/1.1" % self.tcp.addr
        for auth, label in self.BAD_AUTH:
            self.assert_rejected(self.port, self.head(line, auth), RESP_407, "GET, " + label)
        # a second, authenticated request pipelined behind a rejected one is not served
        self.assert_rejected(self.port, self.head(line, None) + self.head(line, basic(USER, PASS)),
                             RESP_407, "GET, pipelined behind a rejected one")
        self.assert_nothing_reached("http forward proxy")
        reply, closed = self.exchange(self.port, self.head(line, basic(USER, PASS)))
        self.assertTrue(reply.startswith(b"HTTP/1.1 200 OK\r\n"), reply)
        self.assertTrue(reply.endswith(CountingTCPServer.BODY), reply)
        self.assertEqual(self.tcp.accepted, 1)

    def test_udp(self):
        frame = s5_udp_frame(LOOPBACK, self.udp.port, b"abc")
        line = "CONNECT %s HTTP/1.1" % self.tcp.addr
        for auth, label in self.BAD_AUTH:
            self.assert_rejected(self.port, self.head(line, auth, "X-Gost-Protocol: udp\r\n") + frame,
                                 RESP_407, "UDP, " + label)
        self.assert_nothing_reached("http UDP")
        s = connect(self.port)
        try:
            s.sendall(self.head(line, basic(USER, PASS), "X-Gost-Protocol: udp\r\n"))
            head, rest = recv_http_head(s)
            self.assertTrue(head.startswith(b"HTTP/1.1 200 OK\r\n"), head)
            s.sendall(frame)
            want = s5_udp_frame(LOOPBACK, self.udp.port, b"echo:abc")
            self.assertEqual(rest + recv_exact(s, len(want) - len(rest)), want)
        finally:
            s.close()
        self.assertEqual(len(self.udp.received), 1)
        self.assertEqual(self.tcp.accepted, 0, "UDP over HTTP must not dial the CONNECT target")


class AutoHttpAuthPathsTest(HttpAuthPathsTest):
    """The same through `auto` (no scheme) dispatching to its HTTP handler."""
    SCHEME = ""


# --------------------------------------------------------------------------
# SOCKS5: CONNECT, BIND, MBIND, UDP ASSOCIATE, UDP-TUN, TLS+auth method
# --------------------------------------------------------------------------

class Socks5AuthPathsTest(AuthPathsBase):
    SCHEME = "socks5://"

    def setUp(self):
        super().setUp()
        self.port = self.gost_service(
            self.SCHEME + USER + ":" + PASS + "@127.0.0.1:%d?udp=true&bind=true", "socks5-auth")

    # (bytes before the request, expected reply, label): the request is pipelined behind them
    BAD_HANDSHAKES = (
        (b"\x05\x01\x00", b"\x05\xff", "only NO AUTH offered"),
        (b"\x05\x02\x00\x80", b"\x05\xff", "NO AUTH and TLS (no auth) offered"),
        (b"\x05\x01\x02" + rfc1929(USER, "wrong"), b"\x05\x02\x01\x01", "wrong password"),
        (b"\x05\x01\x02" + rfc1929("bob", PASS), b"\x05\x02\x01\x01", "unknown user"),
        (b"\x05\x01\x02" + rfc1929("", ""), b"\x05\x02\x01\x01", "empty user"),
    )
    GOOD = b"\x05\x01\x02" + rfc1929(USER, PASS)

    def reject_all(self, request, label, check=None):
        for pre, expect, how in self.BAD_HANDSHAKES:
            self.assert_rejected(self.port, pre + request, expect, "%s, %s" % (label, how))
            if check:
                check("%s, %s" % (label, how))
        self.assert_nothing_reached(label)

    def authed(self):
        s = connect(self.port)
        s.sendall(self.GOOD)
        self.assertEqual(recv_exact(s, 4), b"\x05\x02\x01\x00")
        return s

    def test_connect(self):
        self.reject_all(s5_request(1, LOOPBACK, self.tcp.port) + b"early", "CONNECT")
        self.reject_all(s5_request(1, "localhost", self.tcp.port), "CONNECT to a domain")
        s = self.authed()
        try:
            s.sendall(s5_request(1, LOOPBACK, self.tcp.port))
            self.assertEqual(read_s5_reply(s)[0], 0)
            self.assert_echo(s, "CONNECT with credentials")
        finally:
            s.close()
        self.assertEqual(self.tcp.accepted, 1)

    def test_tls_auth_method_wrong_credentials(self):
        # method 0x82: TLS first, then RFC 1929 inside it (docs/PROTOCOLS.md
        # "socks5: method selection")
        raw = connect(self.port)
        try:
            raw.sendall(b"\x05\x01\x82")
            self.assertEqual(recv_exact(raw, 2), b"\x05\x82")
            s = gostlib.insecure_client_context().wrap_socket(raw)
            s.sendall(rfc1929(USER, "wrong") + s5_request(1, LOOPBACK, self.tcp.port) + b"early")
            reply = b""
            try:
                while True:
                    d = s.recv(4096)
                    if not d:
                        break
                    reply += d
            except (OSError, ssl.SSLError):
                pass
            self.assertEqual(reply, b"\x01\x01")
            s.close()
        finally:
            raw.close()
        self.assert_nothing_reached("TLS+auth method")

    def bind_like(self, cmd, label):
        port = free_port()
        self.reject_all(s5_request(cmd, LOOPBACK, port), label,
                        lambda how: self.assertTrue(port_closed_for_connect(port),
                                                    "%s: port %d was bound" % (how, port)))
        s = self.authed()
        try:
            s.sendall(s5_request(cmd, LOOPBACK, port))
            self.assertEqual(read_s5_reply(s), (0, port), label + " with credentials")
            self.assertFalse(port_closed_for_connect(port), label + ": not listening")
        finally:
            s.close()

    def test_bind(self):
        self.bind_like(2, "BIND")

    def test_mbind(self):
        self.bind_like(0xF2, "MBIND")

    def test_udp_associate(self):
        self.reject_all(s5_request(3, "0.0.0.0", 0), "UDP ASSOCIATE")
        s = self.authed()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.sendall(s5_request(3, "0.0.0.0", 0))
            rep, uport = read_s5_reply(s)
            self.assertEqual(rep, 0)
            u.bind((LOOPBACK, 0))
            u.settimeout(5)
            dst = s5_addr(LOOPBACK, self.udp.port)
            u.sendto(b"\x00\x00\x00" + dst + b"abc", (LOOPBACK, uport))
            self.assertEqual(u.recvfrom(4096)[0], b"\x00\x00\x00" + dst + b"echo:abc")
        finally:
            u.close()
            s.close()
        self.assertEqual(len(self.udp.received), 1)

    def test_udp_tun(self):
        frame = s5_udp_frame(LOOPBACK, self.udp.port, b"abc")
        self.reject_all(s5_request(0xF3, "0.0.0.0", 0) + frame, "UDP-TUN")
        uport = free_udp_port()
        self.reject_all(s5_request(0xF3, LOOPBACK, uport) + frame, "UDP-TUN bind mode",
                        lambda how: self.assertTrue(udp_port_free(uport), "%s: udp port bound" % how))
        s = self.authed()
        try:
            s.sendall(s5_request(0xF3, "0.0.0.0", 0))
            self.assertEqual(read_s5_reply(s)[0], 0)
            s.sendall(frame)
            want = s5_udp_frame(LOOPBACK, self.udp.port, b"echo:abc")
            self.assertEqual(recv_exact(s, len(want)), want)
        finally:
            s.close()
        self.assertEqual(len(self.udp.received), 1)


class AutoSocks5AuthPathsTest(Socks5AuthPathsTest):
    SCHEME = ""


# --------------------------------------------------------------------------
# SOCKS4 / SOCKS4a: USERID checked as a user with an empty password (docs/PROTOCOLS.md
# "core: authentication")
# --------------------------------------------------------------------------

class Socks4AuthPathsTest(AuthPathsBase):
    SCHEME = "socks4://"

    def setUp(self):
        super().setUp()
        self.port = self.gost_service(self.SCHEME + USER + ":" + PASS + "@127.0.0.1:%d", "socks4-auth")
        # password-less user: USERID "alice" passes (the positive control)
        self.open_port = self.gost_service(self.SCHEME + "alice@127.0.0.1:%d", "socks4-alice")

    def requests(self, userids):
        for uid in userids:
            yield socks4_request(self.tcp.port, uid), "socks4 userid=%r" % uid
            yield socks4_request(self.tcp.port, uid, domain="localhost"), "socks4a userid=%r" % uid

    def test_connect(self):
        for port, userids in ((self.port, (b"", USER.encode(), b"bob")),
                              (self.open_port, (b"", b"bob", b"alic"))):
            for req, label in self.requests(userids):
                reply, closed = self.exchange(port, req + b"early")
                self.assertEqual((len(reply), reply[:2]), (8, b"\x00\x5d"), "%s: %r" % (label, reply))
                self.assertTrue(closed, label)
        self.assert_nothing_reached("SOCKS4")
        for n, (req, label) in enumerate(self.requests((b"alice",)), 1):
            s = connect(self.open_port)
            try:
                s.sendall(req)
                self.assertEqual(recv_exact(s, 8)[:2], b"\x00\x5a", label)
                self.assert_echo(s, label)
            finally:
                s.close()
            self.assertEqual(self.tcp.accepted, n)


class Socks4aSchemeAuthPathsTest(Socks4AuthPathsTest):
    SCHEME = "socks4a://"


class AutoSocks4AuthPathsTest(Socks4AuthPathsTest):
    SCHEME = ""


# --------------------------------------------------------------------------
# relay: CONNECT (tcp/udp), BIND (tcp/udp), forward mode (tcp/udp)
# --------------------------------------------------------------------------

BAD_RELAY_AUTH = (([], "no auth feature"), ([relay_auth(USER, "wrong")], "wrong password"),
                  ([relay_auth("bob", PASS)], "unknown user"), ([relay_auth("", "")], "empty user"))
GOOD_RELAY_AUTH = [relay_auth(USER, PASS)]


class RelayAuthPathsTest(AuthPathsBase):

    def setUp(self):
        super().setUp()
        self.port = self.gost_service("relay://" + USER + ":" + PASS + "@127.0.0.1:%d?bind=true",
                                      "relay-auth")

    def reject_all(self, cmd, feats, tail, label, check=None):
        for auth, how in BAD_RELAY_AUTH:
            self.assert_rejected(self.port, relay_request(cmd, *(auth + feats)) + tail,
                                 RELAY_UNAUTHORIZED, "%s, %s" % (label, how))
            if check:
                check("%s, %s" % (label, how))
        self.assert_nothing_reached(label)

    def test_connect_tcp(self):
        for cmd in (1, 0):
            self.reject_all(cmd, [relay_addr(LOOPBACK, self.tcp.port)], b"early", "CONNECT cmd %d" % cmd)
        s = connect(self.port)
        try:
            s.sendall(relay_request(1, *(GOOD_RELAY_AUTH + [relay_addr(LOOPBACK, self.tcp.port)])) + b"hi")
            self.assertEqual(recv_exact(s, 6), RELAY_OK + b"hi")
        finally:
            s.close()
        self.assertEqual(self.tcp.accepted, 1)

    def test_connect_udp(self):
        feats = [relay_network(1), relay_addr(LOOPBACK, self.udp.port)]
        self.reject_all(0x81, feats, b"\x00\x03abc", "UDP CONNECT")
        self.reject_all(0x01, feats, b"\x00\x03abc", "CONNECT with network=udp")
        s = connect(self.port)
        try:
            s.sendall(relay_request(0x81, *(GOOD_RELAY_AUTH + feats)) + b"\x00\x03abc")
            self.assertEqual(recv_exact(s, 4 + 2 + 8), RELAY_OK + b"\x00\x08echo:abc")
        finally:
            s.close()
        self.assertEqual(len(self.udp.received), 1)

    def test_bind_tcp(self):
        port = free_port()
        self.reject_all(2, [relay_network(0), relay_addr(LOOPBACK, port)], b"", "TCP BIND",
                        lambda how: self.assertTrue(port_closed_for_connect(port), "%s: port bound" % how))
        s = connect(self.port)
        try:
            s.sendall(relay_request(2, *(GOOD_RELAY_AUTH + [relay_network(0), relay_addr(LOOPBACK, port)])))
            self.assertEqual(recv_exact(s, 2), b"\x01\x00")
            self.assertTrue(wait_until(lambda: not port_closed_for_connect(port), 5), "TCP BIND: not listening")
        finally:
            s.close()

    def test_bind_udp(self):
        uport = free_udp_port()
        frame = s5_udp_frame(LOOPBACK, self.udp.port, b"abc")
        feats = [relay_network(1), relay_addr(LOOPBACK, uport)]
        self.reject_all(0x82, feats, frame, "UDP BIND",
                        lambda how: self.assertTrue(udp_port_free(uport), "%s: udp port bound" % how))
        self.reject_all(0x82, [relay_network(1), relay_addr("0.0.0.0", 0)], frame, "UDP association")
        s = connect(self.port)
        try:
            s.sendall(relay_request(0x82, *(GOOD_RELAY_AUTH + feats)))
            self.assertEqual(recv_exact(s, 2), b"\x01\x00")
            self.assertTrue(wait_until(lambda: not udp_port_free(uport), 5), "UDP BIND: not bound")
        finally:
            s.close()


class RelayForwardAuthPathsTest(AuthPathsBase):
    """relay forward mode (`relay://user:pass@:port/target`): CMD and address are ignored, auth
    still applies (docs/PROTOCOLS.md "relay: handler")."""

    def test_forward_tcp(self):
        port = self.gost_service("relay://%s:%s@127.0.0.1:%%d/%s" % (USER, PASS, self.tcp.addr),
                                 "relay-forward")
        for auth, how in BAD_RELAY_AUTH:
            for req in (relay_request(1, *auth), relay_request(1, *(auth + [relay_addr(LOOPBACK, 9)])),
                        relay_request(2, *(auth + [relay_network(0)]))):
                self.assert_rejected(port, req + b"early", RELAY_UNAUTHORIZED, "forward, " + how)
        self.assert_nothing_reached("relay forward mode")
        s = connect(port)
        try:
            s.sendall(relay_request(1, *GOOD_RELAY_AUTH) + b"fwd")
            self.assertEqual(recv_exact(s, 7), RELAY_OK + b"fwd")
        finally:
            s.close()
        self.assertEqual(self.tcp.accepted, 1)

    def test_forward_udp(self):
        port = self.gost_service("relay://%s:%s@127.0.0.1:%%d/127.0.0.1:%d" % (USER, PASS, self.udp.port),
                                 "relay-forward-udp")
        for auth, how in BAD_RELAY_AUTH:
            self.assert_rejected(port, relay_request(0x81, *auth) + b"\x00\x03abc", RELAY_UNAUTHORIZED,
                                 "forward udp, " + how)
        self.assert_nothing_reached("relay forward mode (udp)")
        s = connect(port)
        try:
            s.sendall(relay_request(0x81, *GOOD_RELAY_AUTH) + b"\x00\x03abc")
            self.assertEqual(recv_exact(s, 4 + 2 + 8), RELAY_OK + b"\x00\x08echo:abc")
        finally:
            s.close()
        self.assertEqual(len(self.udp.received), 1)


# --------------------------------------------------------------------------
# auto: TLS ClientHello pass-through only without auth (docs/PROTOCOLS.md "core: auto")
# --------------------------------------------------------------------------

class AutoTLSPassThroughAuthTest(AuthPathsBase):

    def setUp(self):
        super().setUp()
        d = temp_dir(self, "gost-e2e-certs-")
        cert, key = make_self_signed(d, "sni443", "localhost")
        with open(cert) as f:
            self.cert_fp = hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()
        # The previous test's listener may linger for a moment (its accept loop polls every
        # 0.2 s): retry "address in use" briefly before concluding that 443 is taken.
        deadline = time.monotonic() + 3
        while True:
            try:
                self.tls443 = self.start_server(HTTPS443Server(cert, key, port=443))
                break
            except OSError as e:
                if e.errno == errno.EADDRINUSE and time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                self.skipTest("cannot bind the TLS target on 127.0.0.1:443 (needs root and a "
                              "free port 443): %s" % e)

    def curl_443(self, port):
        return curl("https://localhost/", timeout=8,
                    extra=["-k", "--connect-to", "localhost:443:127.0.0.1:%d" % port])

    def test_with_auth_closed_and_nothing_dialed(self):
        port = self.gost_service(USER + ":" + PASS + "@127.0.0.1:%d", "auto-auth")
        s = connect(port)
        try:
            s.sendall(client_hello("localhost"))
            reply, closed, elapsed = recv_until_close(s, timeout=8)
        finally:
            s.close()
        self.assertEqual(reply, b"", "ClientHello on an auth service: gost answered")
        self.assertTrue(closed, "ClientHello on an auth service: connection not closed")
        self.assertLess(elapsed, 5)
        with self.assertRaises((ssl.SSLError, OSError)):
            tls_connect(port, server_hostname="localhost", timeout=8).close()
        r = self.curl_443(port)
        self.assertNotEqual(r.rc, 0, r)
        self.assertNotEqual(r.body, HTTPS443Server.BODY, r)
        time.sleep(SETTLE)
        with self.tls443.lock:
            self.assertEqual((self.tls443.accepted, self.tls443.snis), (0, []),
                             "the TLS server on 127.0.0.1:443 was reached through an auth service")
        # the service itself still works for authenticated proxy clients
        s = connect(port)
        try:
            s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n"
                       % (self.tcp.addr, self.tcp.addr, basic(USER, PASS))).encode())
            self.assertEqual(recv_exact(s, len(RESP_200_CONNECT)), RESP_200_CONNECT)
            self.assert_echo(s, "auth service after the ClientHello")
        finally:
            s.close()

    def test_without_auth_passes_through(self):
        port = self.gost_service("127.0.0.1:%d", "auto-open")
        s = tls_connect(port, server_hostname="localhost", timeout=8)
        try:
            self.assertEqual(hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest(), self.cert_fp,
                             "the handshake did not reach the server on 127.0.0.1:443")
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            reply = b""
            try:
                while not reply.endswith(HTTPS443Server.BODY):
                    d = s.recv(4096)
                    if not d:
                        break
                    reply += d
            except (OSError, ssl.SSLError):
                pass
            self.assertTrue(reply.endswith(HTTPS443Server.BODY), reply)
        finally:
            s.close()
        r = self.curl_443(port)
        self.assertEqual((r.rc, r.http_code, r.body), (0, "200", HTTPS443Server.BODY), r)
        with self.tls443.lock:
            self.assertGreaterEqual(self.tls443.handshakes, 2)
            self.assertEqual(self.tls443.snis[:2], ["localhost", "localhost"])


if __name__ == "__main__":
    gostlib.main()

"""End-to-end tests of the `auto` handler (no scheme / `auto://` / `tls://`), spec:
docs/PROTOCOLS.md "core: auto", "core: authentication", "cli: schemes", "socks5", "http".

auto sniffs the first byte: 0x04 -> SOCKS4/4a, 0x05 -> SOCKS5, a TLS record header -> TLS
pass-through to <SNI>:443 (no authentication), anything else -> HTTP proxy.

Every gost process runs with HOME set to a fresh temporary directory (the TLS default
certificate, docs/PROTOCOLS.md "tls: default certificate", must never touch the real $HOME/.gost).

Run: /usr/bin/python3 tests/e2e/test_auto.py <path-to-gost>
"""

import hashlib
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gostlib  # noqa: E402
from gostlib import (request_until_close, RESP_200_CONNECT, RESP_407, basic, client_hello, connect, curl, free_port,  # noqa: E402
                     make_self_signed, recv_exact, recv_until_close, start_gost_in, temp_dir,
                     tls_connect, wait_until)

USER, PASS = "user", "pass"


# --------------------------------------------------------------------------
# raw SOCKS helpers
# --------------------------------------------------------------------------

def socks5_connect_request(host, port):
    """VER CMD RSV ATYP ADDR PORT for CONNECT (IPv4 literal -> ATYP 1, else domain)."""
    try:
        addr = b"\x01" + socket.inet_aton(host)
    except OSError:
        addr = b"\x03" + bytes([len(host)]) + host.encode()
    return b"\x05\x01\x00" + addr + struct.pack(">H", port)


def socks4_request(port, ip="127.0.0.1", userid=b"", domain=None):
    """SOCKS4 CONNECT (SOCKS4a when domain is given: IP 0.0.0.1 + domain)."""
    if domain is not None:
        return (b"\x04\x01" + struct.pack(">H", port) + b"\x00\x00\x00\x01" + userid + b"\x00"
                + domain.encode() + b"\x00")
    return b"\x04\x01" + struct.pack(">H", port) + socket.inet_aton(ip) + userid + b"\x00"


def rfc1929(user, password):
    return b"\x01" + bytes([len(user)]) + user.encode() + bytes([len(password)]) + password.encode()


class AutoTestBase(gostlib.GostTestCase):

    def setUp(self):
        self.origin = self.start_server(gostlib.OriginServer())
        self.echo = self.start_server(gostlib.EchoServer())

    def gost(self, *args, port=None, name="gost"):
        home = temp_dir(self, "gost-e2e-home-")
        return start_gost_in(self, *args, env_extra={"HOME": home}, port=port, name=name)

    def assert_echo(self, s, n=20000, msg=""):
        payload = os.urandom(n)
        s.sendall(payload)
        self.assertEqual(recv_exact(s, n, timeout=10), payload, msg)

    def assert_curl_ok(self, r, msg=""):
        self.assertEqual((r.rc, r.http_code, r.body), (0, "200", self.origin.body), "%s: %r" % (msg, r))

    def assert_closed_no_reply(self, s, within, label, expect=b""):
        data, closed, elapsed = recv_until_close(s, timeout=within + 5)
        self.assertEqual(data, expect, "%s: unexpected reply" % label)
        self.assertTrue(closed, "%s: not closed within %.0fs" % (label, within + 5))
        self.assertLess(elapsed, within, "%s: closed only after %.1fs" % (label, elapsed))
        return elapsed


# --------------------------------------------------------------------------
# plain auto (no scheme): HTTP, SOCKS5, SOCKS4, SOCKS4a on one port
# --------------------------------------------------------------------------

class AutoNoAuthTest(AutoTestBase):

    def setUp(self):
        super().setUp()
        self.port = free_port()
        self.g = self.gost("-L", "127.0.0.1:%d" % self.port, port=self.port)

    def test_http_proxy_get_and_connect(self):
        proxy = "http://127.0.0.1:%d" % self.port
        self.assert_curl_ok(curl(self.origin.url, proxy=proxy), "http GET")
        r = curl(self.origin.url + "path/auto", proxy=proxy, tunnel=True)
        self.assertEqual((r.rc, r.http_connect, r.http_code, r.body), (0, "200", "200", b"path=/path/auto"), r)
        s = connect(self.port)
        try:
            s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (self.echo.addr, self.echo.addr)).encode())
            self.assertEqual(recv_exact(s, len(RESP_200_CONNECT)), RESP_200_CONNECT)
            self.assert_echo(s, msg="http CONNECT")
        finally:
            s.close()

    def test_socks5_curl(self):
        self.assert_curl_ok(curl(self.origin.url, extra=["--socks5-hostname", "127.0.0.1:%d" % self.port]),
                            "--socks5-hostname")
        self.assert_curl_ok(curl(self.origin.url, extra=["--socks5", "127.0.0.1:%d" % self.port]), "--socks5")
        self.assert_curl_ok(curl("http://localhost:%d/" % self.origin.port,
                                 extra=["--socks5-hostname", "127.0.0.1:%d" % self.port]),
                            "--socks5-hostname with a domain")

    def test_socks4_and_socks4a_curl(self):
        self.assert_curl_ok(curl(self.origin.url, extra=["--socks4a", "127.0.0.1:%d" % self.port]), "--socks4a")
        self.assert_curl_ok(curl(self.origin.url, extra=["--socks4", "127.0.0.1:%d" % self.port]), "--socks4")
        self.assert_curl_ok(curl("http://localhost:%d/" % self.origin.port,
                                 extra=["--socks4a", "127.0.0.1:%d" % self.port]), "--socks4a with a domain")

    def test_socks5_raw(self):
        s = connect(self.port)
        try:
            s.sendall(b"\x05\x01\x00")
            self.assertEqual(recv_exact(s, 2), b"\x05\x00")
            s.sendall(socks5_connect_request("127.0.0.1", self.echo.port))
            rep = recv_exact(s, 10)
            self.assertEqual(rep[:4], b"\x05\x00\x00\x01", rep)
            self.assertEqual(len(rep), 10, rep)
            self.assert_echo(s, msg="socks5 tunnel")
        finally:
            s.close()

    def test_socks4_and_4a_raw(self):
        for label, req in (("socks4", socks4_request(self.echo.port)),
                           ("socks4a", socks4_request(self.echo.port, domain="localhost")),
                           ("socks4 with userid", socks4_request(self.echo.port, userid=b"someone"))):
            s = connect(self.port)
            try:
                s.sendall(req)
                rep = recv_exact(s, 8)
                self.assertEqual(len(rep), 8, "%s: %r" % (label, rep))
                self.assertEqual(rep[:2], b"\x00\x5a", "%s: %r" % (label, rep))
                self.assert_echo(s, msg=label)
            finally:
                s.close()

    def test_socks5_connect_failure_reply(self):
        closed_port = free_port()
        s = connect(self.port)
        try:
            s.sendall(b"\x05\x01\x00")
            self.assertEqual(recv_exact(s, 2), b"\x05\x00")
            s.sendall(socks5_connect_request("127.0.0.1", closed_port))
            data, closed, _ = recv_until_close(s, timeout=20)
        finally:
            s.close()
        # network unreachable (docs/PROTOCOLS.md "socks5: requests")
        self.assertEqual(data, b"\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00")
        self.assertTrue(closed)

    def test_relay_protocol_is_not_sniffed(self):
        # docs/PROTOCOLS.md "core: auto": the relay first byte 0x01 goes to the HTTP handler and
        # fails (no reply)
        s = connect(self.port)
        try:
            s.sendall(b"\x01\x00\x00\x00\r\n\r\n")
            self.assert_closed_no_reply(s, 5, "relay bytes")
        finally:
            s.close()
        self.assertAlive(self.g)


# --------------------------------------------------------------------------
# auto with user:pass@ — HTTP 407, SOCKS5 user/pass, SOCKS4 0x5D
# --------------------------------------------------------------------------

class AutoAuthTest(AutoTestBase):

    def setUp(self):
        super().setUp()
        self.port = free_port()
        self.g = self.gost("-L", "%s:%s@127.0.0.1:%d" % (USER, PASS, self.port), port=self.port)
        self.paddr = "127.0.0.1:%d" % self.port

    def test_http_auth(self):
        r = curl(self.origin.url, proxy="http://" + self.paddr)
        self.assertEqual(r.http_code, "407", r)
        r = curl(self.origin.url, proxy="http://%s:wrong@%s" % (USER, self.paddr))
        self.assertEqual(r.http_code, "407", r)
        self.assertEqual(self.origin.requests, [])
        self.assert_curl_ok(curl(self.origin.url, proxy="http://%s:%s@%s" % (USER, PASS, self.paddr)), "http auth")
        # exact 407 (docs/PROTOCOLS.md "http: authentication")
        s = connect(self.port)
        try:
            s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (self.origin.url, self.origin.addr)).encode())
            data, closed, _ = recv_until_close(s, timeout=10)
        finally:
            s.close()
        self.assertEqual(data, RESP_407)
        self.assertTrue(closed)
        # CONNECT with credentials
        s = connect(self.port)
        try:
            s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n"
                       % (self.echo.addr, self.echo.addr, basic(USER, PASS))).encode())
            self.assertEqual(recv_exact(s, len(RESP_200_CONNECT)), RESP_200_CONNECT)
            self.assert_echo(s, msg="http CONNECT with auth")
        finally:
            s.close()

    def test_socks5_auth_curl(self):
        self.assert_curl_ok(curl(self.origin.url, extra=["--socks5-hostname", "%s:%s@%s" % (USER, PASS, self.paddr)]),
                            "socks5 with user:pass")
        n = len(self.origin.requests)
        r = curl(self.origin.url, extra=["--socks5-hostname", self.paddr])
        self.assertNotEqual(r.rc, 0, r)
        r = curl(self.origin.url, extra=["--socks5-hostname", "%s:wrong@%s" % (USER, self.paddr)])
        self.assertNotEqual(r.rc, 0, r)
        self.assertEqual(len(self.origin.requests), n, "rejected socks5 clients reached the origin")

    def test_socks5_auth_raw(self):
        # offers only NO AUTH -> 05 FF, close (docs/PROTOCOLS.md "socks5: method selection")
        s = connect(self.port)
        try:
            s.sendall(b"\x05\x01\x00")
            data, closed, _ = recv_until_close(s, timeout=10)
        finally:
            s.close()
        self.assertEqual(data, b"\x05\xff")
        self.assertTrue(closed)
        # wrong password -> 01 01, close (docs/PROTOCOLS.md "socks5: method selection")
        s = connect(self.port)
        try:
            s.sendall(b"\x05\x01\x02")
            self.assertEqual(recv_exact(s, 2), b"\x05\x02")
            s.sendall(rfc1929(USER, "wrong"))
            data, closed, _ = recv_until_close(s, timeout=10)
        finally:
            s.close()
        self.assertEqual(data, b"\x01\x01")
        self.assertTrue(closed)
        # right password -> 01 00, then CONNECT works
        s = connect(self.port)
        try:
            s.sendall(b"\x05\x01\x02")
            self.assertEqual(recv_exact(s, 2), b"\x05\x02")
            s.sendall(rfc1929(USER, PASS))
            self.assertEqual(recv_exact(s, 2), b"\x01\x00")
            s.sendall(socks5_connect_request("127.0.0.1", self.echo.port))
            rep = recv_exact(s, 10)
            self.assertEqual(rep[:4], b"\x05\x00\x00\x01", rep)
            self.assert_echo(s, msg="socks5 after auth")
        finally:
            s.close()
        self.assertEqual(self.echo.connections, 1)

    def test_socks4_rejected_with_5d(self):
        # docs/PROTOCOLS.md "core: authentication": socks4 auth uses USERID with an empty password
        # -> user:pass cannot pass
        for label, req in (("socks4 no userid", socks4_request(self.echo.port)),
                           ("socks4 userid=user", socks4_request(self.echo.port, userid=USER.encode())),
                           ("socks4a userid=user", socks4_request(self.echo.port, userid=USER.encode(),
                                                                  domain="localhost"))):
            s = connect(self.port)
            try:
                s.sendall(req)
                data, closed, _ = recv_until_close(s, timeout=10)
            finally:
                s.close()
            self.assertEqual(len(data), 8, "%s: %r" % (label, data))
            self.assertEqual(data[:2], b"\x00\x5d", "%s: %r" % (label, data))
            self.assertTrue(closed, label)
        r = curl(self.origin.url, extra=["--socks4a", self.paddr])
        self.assertNotEqual(r.rc, 0, r)
        self.assertEqual(self.origin.requests, [])
        self.assertEqual(self.echo.connections, 0)


class AutoPasswordlessUserTest(AutoTestBase):
    """`user@` = user with an empty password: any password accepted
    (docs/PROTOCOLS.md "core: authentication"), and SOCKS4 USERID `user` passes."""

    def test_passwordless_user(self):
        port = free_port()
        self.gost("-L", "%s@127.0.0.1:%d" % (USER, port), port=port)
        s = connect(port)
        try:
            s.sendall(socks4_request(self.echo.port, userid=USER.encode()))
            rep = recv_exact(s, 8)
            self.assertEqual(rep[:2], b"\x00\x5a", rep)
            self.assert_echo(s, msg="socks4 userid=user")
        finally:
            s.close()
        data, closed = request_until_close(port, socks4_request(self.echo.port, userid=b"bob"), timeout=10)
        self.assertEqual((len(data), data[:2]), (8, b"\x00\x5d"), data)
        self.assertTrue(closed)
        self.assert_curl_ok(curl(self.origin.url, proxy="http://%s:anything@127.0.0.1:%d" % (USER, port)),
                            "http user with any password")
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % port)
        self.assertEqual(r.http_code, "407", r)


# --------------------------------------------------------------------------
# auto over TLS: -L tls://
# --------------------------------------------------------------------------

class AutoOverTLSTest(AutoTestBase):

    def setUp(self):
        super().setUp()
        self.port = free_port()
        self.g = self.gost("-L", "tls://127.0.0.1:%d" % self.port, port=self.port)

    def test_https_proxy(self):
        proxy = "https://127.0.0.1:%d" % self.port
        self.assert_curl_ok(curl(self.origin.url, proxy=proxy, extra=["--proxy-insecure"]), "https proxy GET")
        r = curl(self.origin.url + "path/tls-auto", proxy=proxy, tunnel=True, extra=["--proxy-insecure"])
        self.assertEqual((r.rc, r.http_connect, r.http_code, r.body), (0, "200", "200", b"path=/path/tls-auto"), r)

    def test_socks5_and_socks4_inside_tls(self):
        s = tls_connect(self.port)
        try:
            s.sendall(b"\x05\x01\x00")
            self.assertEqual(recv_exact(s, 2), b"\x05\x00")
            s.sendall(socks5_connect_request("127.0.0.1", self.echo.port))
            rep = recv_exact(s, 10)
            self.assertEqual(rep[:4], b"\x05\x00\x00\x01", rep)
            self.assert_echo(s, msg="socks5 over tls")
        finally:
            s.close()
        s = tls_connect(self.port)
        try:
            s.sendall(socks4_request(self.echo.port))
            rep = recv_exact(s, 8)
            self.assertEqual(rep[:2], b"\x00\x5a", rep)
            self.assert_echo(s, msg="socks4 over tls")
        finally:
            s.close()

    def test_plain_client_on_tls_port_fails(self):
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % self.port, timeout=8)
        self.assertNotEqual(r.http_code, "200", r)
        r = curl(self.origin.url, extra=["--socks5-hostname", "127.0.0.1:%d" % self.port], timeout=8)
        self.assertNotEqual(r.rc, 0, r)
        self.assertEqual(self.origin.requests, [])
        self.assertAlive(self.g)


# --------------------------------------------------------------------------
# TLS pass-through (ClientHello with SNI -> dial <SNI>:443)
# --------------------------------------------------------------------------

class AutoTLSPassThroughTest(AutoTestBase):

    def setUp(self):
        super().setUp()
        d = temp_dir(self, "gost-e2e-certs-")
        self.cert, self.key = make_self_signed(d, "sni443", "localhost")
        try:
            self.tls443 = self.start_server(gostlib.TLSRecordingServer(self.cert, self.key, port=443))
        except OSError as e:
            self.tls443 = None
            self.skip_reason = "cannot bind 127.0.0.1:443 (%s)" % e
        with open(self.cert) as f:
            self.cert_fp = hashlib.sha256(gostlib.ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()

    def need_443(self):
        if self.tls443 is None:
            self.skipTest(self.skip_reason)

    def _passthrough(self, port, label):
        s = tls_connect(port, server_hostname="localhost")
        try:
            der = s.getpeercert(binary_form=True)
            self.assertEqual(hashlib.sha256(der).hexdigest(), self.cert_fp,
                             "%s: the handshake did not reach the server on 127.0.0.1:443" % label)
            self.assert_echo(s, 50000, msg=label)
        finally:
            s.close()
        self.assertTrue(wait_until(lambda: self.tls443.handshakes >= 1, 5), label)
        with self.tls443.lock:
            self.assertEqual(self.tls443.snis[-1:], ["localhost"], label)

    def test_sni_pass_through(self):
        self.need_443()
        port = free_port()
        self.gost("-L", "127.0.0.1:%d" % port, port=port)
        self._passthrough(port, "pass-through")

    def test_sni_pass_through_refused_with_auth(self):
        # docs/PROTOCOLS.md "core: auto" (we differ): with auth configured the pass-through would be
        # an open relay to every host's port 443, so a ClientHello is closed and nothing is dialed
        # (GOST 3.2.6). test_auth_paths.py covers the curl form and the other handler paths.
        self.need_443()
        port = free_port()
        self.gost("-L", "%s:%s@127.0.0.1:%d" % (USER, PASS, port), port=port)
        before = self.tls443.accepted
        s = connect(port)
        try:
            s.sendall(client_hello("localhost"))
            self.assert_closed_no_reply(s, 5, "ClientHello with auth configured")
        finally:
            s.close()
        time.sleep(0.3)
        self.assertEqual(self.tls443.accepted, before, "a connection reached 127.0.0.1:443")

    def test_client_hello_without_sni_closed_nothing_dialed(self):
        port = free_port()
        g = self.gost("-L", "127.0.0.1:%d" % port, port=port)
        before = self.tls443.accepted if self.tls443 else 0
        s = connect(port)
        try:
            s.sendall(client_hello(None))
            self.assert_closed_no_reply(s, 5, "ClientHello without SNI")
        finally:
            s.close()
        self.assertAlive(g)
        self.assert_curl_ok(curl(self.origin.url, proxy="http://127.0.0.1:%d" % port), "after no-SNI hello")
        # "nothing dialed" needs the recording server on 127.0.0.1:443: without it this is a
        # skip (Not Run; a failure in strict mode), not a silent pass
        self.need_443()
        time.sleep(0.3)
        self.assertEqual(self.tls443.accepted, before, "something was dialed to 127.0.0.1:443")


# --------------------------------------------------------------------------
# bad input on auto
# --------------------------------------------------------------------------

class AutoBadInputTest(AutoTestBase):

    def setUp(self):
        super().setUp()
        self.port = free_port()
        self.g = self.gost("-L", "127.0.0.1:%d?readTimeout=2s" % self.port, port=self.port)

    def assert_still_serves(self, msg):
        self.assertAlive(self.g)
        self.assert_curl_ok(curl(self.origin.url, proxy="http://127.0.0.1:%d" % self.port), msg + " (http)")
        self.assert_curl_ok(curl(self.origin.url, extra=["--socks5-hostname", "127.0.0.1:%d" % self.port]),
                            msg + " (socks5)")

    def test_garbage_closed_without_reply(self):
        for label, data in (("binary garbage line", b"\x00\xff\xfegarbage\x80\x81\r\n\r\n"),
                            ("bad request line", b"GARBAGE garbage\r\n\r\n"),
                            ("0x16 but not a TLS version", b"\x16\x00\x00junk\r\n\r\n"),
                            ("TLS record header, junk body", b"\x16\x03\x01\x00\x08" + b"\xff" * 8)):
            s = connect(self.port)
            try:
                s.sendall(data)
                self.assert_closed_no_reply(s, 5, label)
            finally:
                s.close()
        self.assertEqual(self.origin.requests, [])
        self.assertEqual(self.echo.connections, 0)
        self.assert_still_serves("after garbage")

    def test_lone_socks5_byte_closed_after_read_timeout(self):
        s = connect(self.port)
        try:
            s.sendall(b"\x05")
            elapsed = self.assert_closed_no_reply(s, 8, "lone 0x05")
        finally:
            s.close()
        self.assertGreater(elapsed, 1.5, "closed before readTimeout=2s")
        # after the greeting, the request never comes
        s = connect(self.port)
        try:
            s.sendall(b"\x05\x01\x00")
            self.assertEqual(recv_exact(s, 2), b"\x05\x00")
            elapsed = self.assert_closed_no_reply(s, 8, "greeting then silence")
        finally:
            s.close()
        self.assertGreater(elapsed, 1.5, "closed before readTimeout=2s")
        self.assert_still_serves("after socks5 timeouts")

    def test_lone_socks4_byte_closed_after_read_timeout(self):
        s = connect(self.port)
        try:
            s.sendall(b"\x04\x01")
            elapsed = self.assert_closed_no_reply(s, 8, "lone 0x04 0x01")
        finally:
            s.close()
        self.assertGreater(elapsed, 1.5, "closed before readTimeout=2s")
        self.assert_still_serves("after socks4 timeout")

    def test_lone_tls_byte_then_silence(self):
        hang = connect(self.port)
        hang2 = connect(self.port)
        try:
            hang.sendall(b"\x16")
            hang2.sendall(client_hello("localhost")[:40])
            time.sleep(0.3)
            # others are served while these hang
            self.assert_still_serves("while 0x16 / a truncated ClientHello hang")
        finally:
            hang.close()
            hang2.close()
        self.assert_still_serves("after 0x16 then close")

    def test_many_short_connections(self):
        for i in range(60):
            s = connect(self.port)
            try:
                s.sendall([b"\x05", b"\x04", b"\x16\x03", b"G", b"\x16\x03\x01\x00"][i % 5])
            finally:
                s.close()
        self.assert_still_serves("after many aborted connections")


if __name__ == "__main__":
    gostlib.main()

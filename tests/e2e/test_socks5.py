"""End-to-end tests of the SOCKS5 and SOCKS4/4a handlers and connectors.

Spec: docs/PROTOCOLS.md "socks5" (method selection and RFC 1929, requests, BIND, UDP, connector,
golden bytes), "socks4", "core: auto" to "core: errors". Independent clients: curl (--socks5,
--socks5-hostname, --socks4, --socks4a) and Debian's python3-socks (PySocks); GOST's own TLS
methods 0x80/0x82 are driven with Python's ssl module.
Run: /usr/bin/python3 tests/e2e/test_socks5.py <path-to-gost>
"""

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
from gostlib import connect, curl, free_port, free_ports, recv_exact, recv_until_close  # noqa: E402

try:
    import socks  # python3-socks (PySocks)
except ImportError:  # pragma: no cover
    socks = None

ZERO_ADDR = b"\x01\x00\x00\x00\x00\x00\x00"


def socks5_addr(host, port):
    try:
        return b"\x01" + socket.inet_aton(host) + struct.pack(">H", port)
    except OSError:
        return b"\x03" + bytes([len(host)]) + host.encode() + struct.pack(">H", port)


def read_reply(s, timeout=10):
    """Reads one SOCKS5 reply exactly; returns (rep, atyp, addr_bytes, port)."""
    head = recv_exact(s, 4, timeout)
    if len(head) < 4:
        raise EOFError("short reply %r" % head)
    atyp = head[3]
    if atyp == 1:
        addr = recv_exact(s, 4, timeout)
    elif atyp == 4:
        addr = recv_exact(s, 16, timeout)
    elif atyp == 3:
        n = recv_exact(s, 1, timeout)
        addr = n + recv_exact(s, n[0], timeout)
    else:
        raise ValueError("bad atyp in %r" % head)
    port = struct.unpack(">H", recv_exact(s, 2, timeout))[0]
    return head[1], atyp, addr, port


def tls_client(sock):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx.wrap_socket(sock)


from gostlib import SMUX_FIN, SMUX_PSH, SMUX_SYN, Smux  # noqa: E402


class Socks5Base(gostlib.GostTestCase):

    def setUp(self):
        self.origin = self.start_server(gostlib.OriginServer())
        self.echo = self.start_server(gostlib.EchoServer())

    def start_socks(self, query="", auth="", scheme="socks5"):
        port = free_port()
        url = "%s://%s127.0.0.1:%d" % (scheme, (auth + "@") if auth else "", port)
        if query:
            url += "?" + query
        p = self.start_gost("-L", url, port=port, name="%s-server" % scheme)
        return port, p

    def handshake_noauth(self, port):
        s = connect(port)
        s.sendall(b"\x05\x01\x00")
        self.assertEqual(recv_exact(s, 2), b"\x05\x00")
        return s

    def assert_echo(self, s, size=20000, msg=""):
        payload = os.urandom(size)
        s.sendall(payload)
        self.assertEqual(recv_exact(s, len(payload), timeout=15), payload, msg)


class CurlTest(Socks5Base):

    def test_curl_socks5_with_auth(self):
        port, _ = self.start_socks(auth="user:pass")
        for flag in ("--socks5-hostname", "--socks5"):
            r = curl(self.origin.url, extra=(flag, "user:pass@127.0.0.1:%d" % port))
            self.assertEqual((r.rc, r.http_code, r.body), (0, "200", self.origin.body), "%s %r" % (flag, r))
        r = curl("http://localhost:%d/path/x" % self.origin.port,
                 extra=("--socks5-hostname", "user:pass@127.0.0.1:%d" % port))
        self.assertEqual((r.rc, r.body), (0, b"path=/path/x"), repr(r))

    def test_curl_wrong_credentials(self):
        port, p = self.start_socks(auth="user:pass")
        r = curl(self.origin.url, extra=("--socks5", "user:wrong@127.0.0.1:%d" % port))
        self.assertNotEqual(r.rc, 0, repr(r))
        # exact RFC 1929 failure, then close
        s = connect(port)
        s.sendall(b"\x05\x01\x02")
        self.assertEqual(recv_exact(s, 2), b"\x05\x02")
        s.sendall(b"\x01\x04user\x05wrong")
        data, closed, _ = recv_until_close(s, timeout=5)
        s.close()
        self.assertEqual((data, closed), (b"\x01\x01", True))
        self.assertAlive(p)

    def test_curl_no_auth_server(self):
        port, _ = self.start_socks()
        for flag in ("--socks5-hostname", "--socks5"):
            r = curl(self.origin.url, extra=(flag, "127.0.0.1:%d" % port))
            self.assertEqual((r.rc, r.body), (0, self.origin.body), "%s %r" % (flag, r))

    def test_curl_socks4_and_4a(self):
        port, _ = self.start_socks(scheme="socks4")
        r = curl(self.origin.url, extra=("--socks4", "127.0.0.1:%d" % port))
        self.assertEqual((r.rc, r.body), (0, self.origin.body), repr(r))
        r = curl("http://localhost:%d/" % self.origin.port, extra=("--socks4a", "127.0.0.1:%d" % port))
        self.assertEqual((r.rc, r.body), (0, self.origin.body), repr(r))


class MethodSelectionTest(Socks5Base):

    def exchange(self, port, greeting):
        s = connect(port)
        try:
            s.sendall(greeting)
            return recv_until_close(s, timeout=5)
        finally:
            s.close()

    def test_table_without_auth(self):
        port, p = self.start_socks()
        self.assertEqual(self.exchange(port, b"\x05\x01\x02")[:2], (b"\x05\xff", True))
        s = connect(port)
        s.sendall(b"\x05\x01\x00")
        self.assertEqual(recv_exact(s, 2), b"\x05\x00")
        s.close()
        s = connect(port)
        s.sendall(b"\x05\x02\x00\x80")
        self.assertEqual(recv_exact(s, 2), b"\x05\x80")
        s.close()
        self.assertAlive(p)

    def test_table_with_auth(self):
        port, _ = self.start_socks(auth="user:pass")
        self.assertEqual(self.exchange(port, b"\x05\x01\x00")[:2], (b"\x05\xff", True))
        self.assertEqual(self.exchange(port, b"\x05\x02\x00\x80")[:2], (b"\x05\xff", True))
        s = connect(port)
        s.sendall(b"\x05\x04\x00\x02\x80\x82")
        self.assertEqual(recv_exact(s, 2), b"\x05\x82")
        s.close()

    def test_notls(self):
        port, _ = self.start_socks(query="notls=true", auth="user:pass")
        s = connect(port)
        s.sendall(b"\x05\x04\x00\x02\x80\x82")
        self.assertEqual(recv_exact(s, 2), b"\x05\x02")
        s.close()
        port, _ = self.start_socks(query="notls=true")
        s = connect(port)
        s.sendall(b"\x05\x02\x00\x80")
        self.assertEqual(recv_exact(s, 2), b"\x05\x00")
        s.close()

    def test_tls_method_0x80(self):
        port, _ = self.start_socks()
        s = connect(port)
        s.sendall(b"\x05\x02\x00\x80")
        self.assertEqual(recv_exact(s, 2), b"\x05\x80")
        t = tls_client(s)
        t.sendall(b"\x05\x01\x00" + socks5_addr("127.0.0.1", self.echo.port))
        rep, _, _, _ = read_reply(t)
        self.assertEqual(rep, 0)
        self.assert_echo(t, msg="data inside TLS")
        t.close()

    def test_tls_auth_method_0x82(self):
        port, _ = self.start_socks(auth="user:pass")
        s = connect(port)
        s.sendall(b"\x05\x04\x00\x02\x80\x82")
        self.assertEqual(recv_exact(s, 2), b"\x05\x82")
        t = tls_client(s)
        t.sendall(b"\x01\x04user\x04pass")
        self.assertEqual(recv_exact(t, 2), b"\x01\x00")
        t.sendall(b"\x05\x01\x00" + socks5_addr("127.0.0.1", self.echo.port))
        rep, _, _, _ = read_reply(t)
        self.assertEqual(rep, 0)
        self.assert_echo(t)
        t.close()


class RequestTest(Socks5Base):

    def test_connect_reply_and_bnd(self):
        port, _ = self.start_socks()
        s = self.handshake_noauth(port)
        s.sendall(b"\x05\x01\x00" + socks5_addr("127.0.0.1", self.echo.port))
        rep, atyp, addr, bport = read_reply(s)
        # BND = local address of the outbound connection
        self.assertEqual((rep, atyp, addr), (0, 1, socket.inet_aton("127.0.0.1")))
        self.assertNotEqual(bport, 0)
        self.assert_echo(s)
        s.close()

    def test_connect_domain_and_ipv6_types(self):
        port, _ = self.start_socks()
        s = self.handshake_noauth(port)
        s.sendall(b"\x05\x01\x00" + socks5_addr("localhost", self.echo.port))
        self.assertEqual(read_reply(s)[0], 0)
        self.assert_echo(s)
        s.close()
        # IPv6 target (nothing listens on [::1]:echo port → 0x03, or success if it does)
        s = self.handshake_noauth(port)
        s.sendall(b"\x05\x01\x00\x04" + socket.inet_pton(socket.AF_INET6, "::1") +
                  struct.pack(">H", free_port()))
        data, closed, _ = recv_until_close(s, timeout=10)
        s.close()
        self.assertEqual((data, closed), (b"\x05\x03\x00" + ZERO_ADDR, True))

    def test_error_replies(self):
        port, p = self.start_socks()
        cases = [
            (b"\x05\x09\x00" + ZERO_ADDR, b"\x05\x07\x00" + ZERO_ADDR),   # unknown command
            (b"\x05\x03\x00" + ZERO_ADDR, b"\x05\x02\x00" + ZERO_ADDR),   # udp disabled
            (b"\x05\x02\x00" + ZERO_ADDR, b"\x05\x02\x00" + ZERO_ADDR),   # bind disabled
            (b"\x05\xf3\x00" + ZERO_ADDR, b"\x05\x02\x00" + ZERO_ADDR),   # udp tun disabled
            (b"\x05\xf0\x00" + ZERO_ADDR, b"\x05\x07\x00" + ZERO_ADDR),   # tor disabled
            (b"\x05\x01\x00" + socks5_addr("127.0.0.1", free_port()),
             b"\x05\x03\x00" + ZERO_ADDR),                                 # dial failure
            (b"\x05\x01\x00\x09\x00\x00", b""),                            # bad ATYP: no reply
            (b"\x04\x01\x00" + ZERO_ADDR, b""),                            # bad version
        ]
        for req, want in cases:
            s = self.handshake_noauth(port)
            s.sendall(req)
            data, closed, _ = recv_until_close(s, timeout=10)
            s.close()
            self.assertEqual((data, closed), (want, True), "request %r" % req)
        self.assertAlive(p)

    def test_bind(self):
        port, _ = self.start_socks(query="bind=true")
        s = self.handshake_noauth(port)
        s.sendall(b"\x05\x02\x00" + socks5_addr("127.0.0.1", 0))
        rep, atyp, addr, lport = read_reply(s)
        self.assertEqual((rep, atyp, addr), (0, 1, socket.inet_aton("127.0.0.1")))
        peer = socket.create_connection(("127.0.0.1", lport), timeout=5)
        rep, atyp, addr, pport = read_reply(s)
        self.assertEqual((rep, atyp, addr, pport),
                         (0, 1, socket.inet_aton("127.0.0.1"), peer.getsockname()[1]))
        peer.sendall(b"from-peer")
        self.assertEqual(recv_exact(s, 9), b"from-peer")
        s.sendall(b"from-client")
        self.assertEqual(recv_exact(peer, 11), b"from-client")
        peer.close()
        s.close()

    def test_mbind(self):
        # MBIND (0xF2): the control stream becomes an smux v1 session; the server opens stream 3,
        # 5, ... per inbound connection, each starting with 05 00 00 ATYP <peer> (docs/PROTOCOLS.md
        # "socks5: BIND and MBIND").
        port, p = self.start_socks(query="bind=true")
        s = self.handshake_noauth(port)
        s.sendall(b"\x05\xf2\x00" + socks5_addr("127.0.0.1", 0))
        rep, atyp, addr, lport = read_reply(s)
        self.assertEqual((rep, atyp, addr), (0, 1, socket.inet_aton("127.0.0.1")))
        mux = Smux(s)
        try:
            peer = socket.create_connection(("127.0.0.1", lport), timeout=5)
            peer.sendall(b"mux!")
            pport = struct.pack(">H", peer.getsockname()[1])
            # golden (GOST 3.2.6): SYN 3, PSH 3 with the reply, PSH 3 with the peer's bytes
            self.assertEqual(mux.read_frame(), (1, SMUX_SYN, 3, b""))
            self.assertEqual(mux.read_frame(),
                             (1, SMUX_PSH, 3, b"\x05\x00\x00\x01\x7f\x00\x00\x01" + pport))
            mux.pump_until(lambda: mux.data.get(3) == b"mux!")
            mux.send(SMUX_PSH, 3, b"from-client")
            self.assertEqual(recv_exact(peer, 11), b"from-client")
            peer2 = socket.create_connection(("127.0.0.1", lport), timeout=5)
            peer2.sendall(b"two")
            mux.pump_until(lambda: mux.data.get(5, b"").endswith(b"two"))
            self.assertTrue(mux.data[5].startswith(b"\x05\x00\x00\x01\x7f\x00\x00\x01"))
            peer.close()
            mux.pump_until(lambda: 3 in mux.fin)
            mux.send(SMUX_FIN, 5)
            data, closed, _ = recv_until_close(peer2)
            self.assertEqual((data, closed), (b"", True))
            peer2.close()
        finally:
            s.close()
        deadline = time.time() + 10
        while time.time() < deadline and not gostlib.port_closed_for_connect(lport):
            time.sleep(0.1)
        self.assertTrue(gostlib.port_closed_for_connect(lport))
        self.assertAlive(p)

    def test_mbind_disabled_and_mux_options(self):
        port, p = self.start_socks()
        s = self.handshake_noauth(port)
        s.sendall(b"\x05\xf2\x00" + socks5_addr("127.0.0.1", 0))
        data, closed, _ = recv_until_close(s, timeout=5)
        s.close()
        self.assertEqual((data, closed), (b"\x05\x02\x00" + ZERO_ADDR, True))
        for q in ("bind=true&mux.type=yamux", "bind=true&mux.version=2"):
            lport = free_port()
            g = self.start_gost("-L", "socks5://127.0.0.1:%d?%s" % (lport, q), port=lport,
                                name="socks5-mux", wait=False)
            g.expected_exit = True
            self.assertNotEqual(g.wait_exit(10), 0)
            self.assertIn("not supported by this implementation", g.stderr_text())


class UdpTest(Socks5Base):

    def setUp(self):
        super().setUp()
        self.uecho = gostlib.UdpEchoServer()
        self.addCleanup(self.uecho.close)

    def udp_associate_raw(self, port):
        s = self.handshake_noauth(port)
        s.sendall(b"\x05\x03\x00" + ZERO_ADDR)
        rep, atyp, addr, uport = read_reply(s)
        self.assertEqual((rep, atyp, addr), (0, 1, socket.inet_aton("127.0.0.1")))
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        u.settimeout(5)
        return s, u, uport

    def test_udp_associate_raw_bytes(self):
        port, _ = self.start_socks(query="udp=true")
        s, u, uport = self.udp_associate_raw(port)
        dst = socks5_addr("127.0.0.1", self.uecho.port)
        u.sendto(b"\x00\x00\x00" + dst + b"abc", ("127.0.0.1", uport))
        d, src = u.recvfrom(4096)
        self.assertEqual(d, b"\x00\x00\x00" + dst + b"echo:abc")
        self.assertEqual(src, ("127.0.0.1", uport))
        # RSV/FRAG not checked; domain destination
        u.sendto(b"\x12\x34\x05" + socks5_addr("localhost", self.uecho.port) + b"dom", ("127.0.0.1", uport))
        d, _ = u.recvfrom(4096)
        self.assertTrue(d.endswith(b"echo:dom"), d)
        u.close()
        s.close()

    def test_udp_associate_pysocks(self):
        if socks is None:
            self.skipTest("python3-socks not installed")
        port, _ = self.start_socks(query="udp=true", auth="user:pass")
        c = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
        c.set_proxy(socks.SOCKS5, "127.0.0.1", port, username="user", password="pass")
        c.settimeout(5)
        for i in range(5):
            payload = os.urandom(1000)
            c.sendto(payload, ("127.0.0.1", self.uecho.port))
            d, src = c.recvfrom(8192)
            self.assertEqual((d, src), (b"echo:" + payload, ("127.0.0.1", self.uecho.port)))
        c.close()

    def test_udp_tun_relay_mode(self):
        port, _ = self.start_socks(query="udp=true")
        s = self.handshake_noauth(port)
        s.sendall(b"\x05\xf3\x00" + ZERO_ADDR)
        rep, _, _, _ = read_reply(s)
        self.assertEqual(rep, 0)
        dst = socks5_addr("127.0.0.1", self.uecho.port)
        s.sendall(struct.pack(">H", 3) + b"\xff" + dst + b"abc")
        head = recv_exact(s, 3 + len(dst))
        self.assertEqual(head, struct.pack(">H", 8) + b"\xff" + dst)
        self.assertEqual(recv_exact(s, 8), b"echo:abc")
        s.close()

    def test_udp_through_socks5_chain(self):
        """client → gost A (udp=true, -F socks5://B) → gost B (udp=true) → UDP echo (UDP-TUN hop)."""
        b_port, _ = self.start_socks(query="udp=true", auth="user:pass")
        a_port = free_port()
        self.start_gost("-L", "socks5://127.0.0.1:%d?udp=true" % a_port,
                        "-F", "socks5://user:pass@127.0.0.1:%d" % b_port, port=a_port, name="A")
        s, u, uport = self.udp_associate_raw(a_port)
        dst = socks5_addr("127.0.0.1", self.uecho.port)
        for i in range(3):
            u.sendto(b"\x00\x00\x00" + dst + b"hop%d" % i, ("127.0.0.1", uport))
            d, _ = u.recvfrom(4096)
            self.assertEqual(d, b"\x00\x00\x00" + dst + b"echo:hop%d" % i)
        u.close()
        s.close()

    def test_udp_through_http_chain(self):
        """client → gost A (socks5, udp=true, -F http://H) → gost H (http, udp=true: UDP over HTTP,
        docs/PROTOCOLS.md "http: UDP") → UDP echo."""
        hp = free_port()
        self.start_gost("-L", "http://127.0.0.1:%d?udp=true" % hp, port=hp, name="http-hop")
        a_port = free_port()
        self.start_gost("-L", "socks5://127.0.0.1:%d?udp=true" % a_port,
                        "-F", "http://127.0.0.1:%d" % hp, port=a_port, name="A")
        s, u, uport = self.udp_associate_raw(a_port)
        dst = socks5_addr("127.0.0.1", self.uecho.port)
        for i in range(3):
            u.sendto(b"\x00\x00\x00" + dst + b"http%d" % i, ("127.0.0.1", uport))
            d, _ = u.recvfrom(4096)
            self.assertEqual(d, b"\x00\x00\x00" + dst + b"echo:http%d" % i)
        u.close()
        s.close()

    def test_udp_through_http_chain_without_udp_fails_cleanly(self):
        """The http hop refuses UDP (403, udp not enabled): the SOCKS5 client gets REP 0x01."""
        hp = free_port()
        self.start_gost("-L", "http://127.0.0.1:%d" % hp, port=hp, name="http-hop")
        a_port = free_port()
        a = self.start_gost("-L", "socks5://127.0.0.1:%d?udp=true" % a_port,
                            "-F", "http://127.0.0.1:%d" % hp, port=a_port, name="A")
        s = self.handshake_noauth(a_port)
        s.sendall(b"\x05\x03\x00" + ZERO_ADDR)
        data, closed, _ = recv_until_close(s, timeout=20)
        s.close()
        self.assertEqual((data, closed), (b"\x05\x01\x00" + ZERO_ADDR, True))
        self.assertIn("403 Forbidden", a.stderr_text())
        self.assertAlive(a)


class ConnectorTest(Socks5Base):

    def chain_via(self, server_port, node_url_suffix="", auth="user:pass"):
        a_port = free_port()
        self.start_gost("-L", "http://127.0.0.1:%d" % a_port,
                        "-F", "socks5://%s127.0.0.1:%d%s" % ((auth + "@") if auth else "", server_port,
                                                           node_url_suffix),
                        port=a_port, name="client")
        return a_port

    def assert_http_proxy_works(self, a_port, msg):
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % a_port)
        self.assertEqual((r.rc, r.http_code, r.body), (0, "200", self.origin.body), "%s %r" % (msg, r))
        r = curl(self.origin.url + "path/t", proxy="http://127.0.0.1:%d" % a_port, tunnel=True)
        self.assertEqual((r.rc, r.body), (0, b"path=/path/t"), "%s %r" % (msg, r))

    def test_default_uses_tls_auth(self):
        srv, _ = self.start_socks(auth="user:pass")
        tap = gostlib.TapProxy(srv)
        self.addCleanup(tap.close)
        a_port = self.chain_via(tap.port)
        self.assert_http_proxy_works(a_port, "default (TLS methods)")
        cap = tap.wait_capture(7)
        # greeting, then a TLS ClientHello record right after the server's 05 82
        self.assertEqual(cap[:6], b"\x05\x04\x00\x02\x80\x82")
        self.assertEqual(cap[6:7], b"\x16")

    def test_default_no_credentials_uses_tls(self):
        srv, _ = self.start_socks()
        tap = gostlib.TapProxy(srv)
        self.addCleanup(tap.close)
        a_port = self.chain_via(tap.port, auth="")
        self.assert_http_proxy_works(a_port, "0x80")
        cap = tap.wait_capture(5)
        self.assertEqual(cap[:5], b"\x05\x02\x00\x80\x16")

    def test_notls(self):
        srv, _ = self.start_socks(auth="user:pass")
        tap = gostlib.TapProxy(srv)
        self.addCleanup(tap.close)
        a_port = self.chain_via(tap.port, "?notls=true")
        self.assert_http_proxy_works(a_port, "notls")
        cap = tap.wait_capture(4 + 11 + 3)
        self.assertEqual(cap[:15], b"\x05\x02\x00\x02\x01\x04user\x04pass")
        self.assertEqual(cap[15:18], b"\x05\x01\x00")

    def test_wrong_credentials_503(self):
        srv, _ = self.start_socks(auth="user:pass")
        a_port = self.chain_via(srv, auth="user:bad")
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % a_port, tunnel=True)
        self.assertEqual(r.http_connect, "503", repr(r))

    def test_mixed_chain_http_then_socks5(self):
        """client → A (http) -F http://B -F socks5://C → target."""
        b_port = free_port()
        self.start_gost("-L", "http://127.0.0.1:%d" % b_port, port=b_port, name="B-http")
        c_port, _ = self.start_socks(auth="user:pass")
        a_port = free_port()
        self.start_gost("-L", "http://127.0.0.1:%d" % a_port,
                        "-F", "http://127.0.0.1:%d" % b_port,
                        "-F", "socks5://user:pass@127.0.0.1:%d" % c_port, port=a_port, name="A")
        self.assert_http_proxy_works(a_port, "http → socks5 chain")

    def test_socks4_connector(self):
        s4, _ = self.start_socks(scheme="socks4")
        a_port = free_port()
        self.start_gost("-L", "http://127.0.0.1:%d" % a_port, "-F", "socks4a://127.0.0.1:%d" % s4,
                        port=a_port, name="client4")
        self.assert_http_proxy_works(a_port, "socks4a connector")


class IntegrityTest(Socks5Base):
    SIZE = 8 << 20

    def duplex(self, sock_factory, msg):
        server = self.start_server(gostlib.DuplexServer(self.SIZE))
        s = sock_factory(server.port)
        payload = os.urandom(self.SIZE)
        got = hashlib.sha256()
        total = [0]

        def reader():
            while True:
                d = s.recv(65536)
                if not d:
                    break
                got.update(d)
                total[0] += len(d)

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        t.join(120)
        s.close()
        rec = server.wait_record(lambda r: True, timeout=60)
        self.assertIsNotNone(rec, msg)
        self.assertEqual((rec["recv_len"], rec["recv_sha"]),
                         (self.SIZE, hashlib.sha256(payload).hexdigest()), msg + " client→server")
        self.assertEqual((total[0], got.hexdigest()), (self.SIZE, rec["sent_sha"]), msg + " server→client")

    def test_8mib_direct_pysocks(self):
        if socks is None:
            self.skipTest("python3-socks not installed")
        port, _ = self.start_socks(auth="user:pass")

        def factory(target):
            c = socks.socksocket()
            c.set_proxy(socks.SOCKS5, "127.0.0.1", port, username="user", password="pass")
            c.settimeout(120)
            c.connect(("127.0.0.1", target))
            return c
        self.duplex(factory, "pysocks")

    def test_8mib_through_connector_tls(self):
        srv, _ = self.start_socks(auth="user:pass")
        a_port = free_port()
        self.start_gost("-L", "socks5://127.0.0.1:%d?notls=true" % a_port,
                        "-F", "socks5://user:pass@127.0.0.1:%d" % srv, port=a_port, name="A")

        def factory(target):
            s = connect(a_port, timeout=120)
            s.sendall(b"\x05\x01\x00")
            self.assertEqual(recv_exact(s, 2), b"\x05\x00")
            s.sendall(b"\x05\x01\x00" + socks5_addr("127.0.0.1", target))
            self.assertEqual(read_reply(s)[0], 0)
            return s
        self.duplex(factory, "socks5 → socks5 (TLS-AUTH)")


class BadInputTest(Socks5Base):

    def test_garbage_truncated_silence(self):
        port, p = self.start_socks(query="readTimeout=1s", auth="user:pass")
        cases = [
            b"GET / HTTP/1.1\r\n\r\n",
            os.urandom(300).replace(b"\x05", b"\x06"),
            b"\x05",                      # truncated greeting
            b"\x05\x03\x00",              # fewer methods than announced
            b"\x05\x00",                  # NMETHODS 0
            b"",                          # silence
        ]
        for data in cases:
            s = connect(port)
            start = time.monotonic()
            if data:
                s.sendall(data)
            out, closed, elapsed = recv_until_close(s, timeout=8)
            s.close()
            self.assertTrue(closed, "not closed after %r" % data[:20])
            self.assertLess(elapsed, 5, "closed too late after %r" % data[:20])
            self.assertEqual(out, b"", "reply to %r" % data[:20])
        # silence after the greeting and inside RFC 1929
        s = connect(port)
        s.sendall(b"\x05\x01\x02")
        out, closed, elapsed = recv_until_close(s, timeout=8)
        s.close()
        self.assertEqual((out, closed), (b"\x05\x02", True))
        self.assertLess(elapsed, 5)
        self.assertAlive(p)
        r = curl(self.origin.url, extra=("--socks5-hostname", "user:pass@127.0.0.1:%d" % port))
        self.assertEqual((r.rc, r.body), (0, self.origin.body), repr(r))

    def test_socks4_rejections(self):
        port, p = self.start_socks(scheme="socks4", auth="alice:")
        s = connect(port)
        s.sendall(b"\x04\x01" + struct.pack(">H", self.echo.port) + socket.inet_aton("127.0.0.1") + b"bob\x00")
        out, closed, _ = recv_until_close(s, timeout=5)
        s.close()
        self.assertEqual((out, closed), (b"\x00\x5d" + b"\x00" * 6, True))
        s = connect(port)
        s.sendall(b"\x04\x01" + struct.pack(">H", self.echo.port) + socket.inet_aton("127.0.0.1") + b"alice\x00")
        self.assertEqual(recv_exact(s, 8), b"\x00\x5a" + b"\x00" * 6)
        self.assert_echo(s)
        s.close()
        s = connect(port)
        s.sendall(b"\x04\x01\x00\x50\x7f\x00\x00\x01" + b"u" * 300)  # USERID too long
        out, closed, _ = recv_until_close(s, timeout=5)
        s.close()
        self.assertEqual((out, closed), (b"", True))
        self.assertAlive(p)


if __name__ == "__main__":
    gostlib.main()

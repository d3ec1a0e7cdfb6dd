"""End-to-end tests of the TLS listener/dialer (`https://` = http+tls), spec: docs/PROTOCOLS.md
"tls", "cli: schemes" (scheme mapping), "http".

Every gost process runs with HOME (and usually the working directory) set to fresh
temporary directories, so the default certificate (docs/PROTOCOLS.md "tls: default certificate")
never touches the real $HOME/.gost.

Run: /usr/bin/python3 tests/e2e/test_tls.py <path-to-gost>
"""

import hashlib
import os
import re
import socket
import ssl
import stat
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gostlib  # noqa: E402
from gostlib import (request_until_close, RESP_200_CONNECT, RESP_503_CONNECT, RESP_503_FORWARD, client_hello, connect,  # noqa: E402
                     curl, free_port, free_ports, make_self_signed, make_signed, openssl_cmd,
                     recv_exact, recv_until_close, start_gost_in, temp_dir, tls_connect, wait_until)

SIZE = 8 * 1024 * 1024
TRANSFER_TIMEOUT = 90


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def served_cert_der(port, server_hostname=None):
    """DER of the certificate the TLS server on port presents (no verification)."""
    s = tls_connect(port, server_hostname=server_hostname)
    try:
        return s.getpeercert(binary_form=True)
    finally:
        s.close()


def der_fingerprint(der):
    return hashlib.sha256(der).hexdigest()


def pem_file_fingerprint(path):
    with open(path) as f:
        return der_fingerprint(ssl.PEM_cert_to_DER_cert(f.read()))


def s_client_text(port):
    """`openssl s_client -connect` then `openssl x509 -text` of the served certificate."""
    out = openssl_cmd("s_client", "-connect", "127.0.0.1:%d" % port, input_bytes=b"", timeout=20)
    text = out.decode("utf-8", "replace")
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S)
    if not m:
        raise AssertionError("s_client printed no certificate:\n%s" % text)
    x509 = openssl_cmd("x509", "-noout", "-text", "-subject", "-nameopt", "RFC2253",
                       input_bytes=m.group(0).encode()).decode("utf-8", "replace")
    return text, x509


def https_proxy(port):
    return "https://127.0.0.1:%d" % port


class TLSTestBase(gostlib.GostTestCase):

    def setUp(self):
        self.origin = self.start_server(gostlib.OriginServer())
        self.echo = self.start_server(gostlib.EchoServer())
        self.certdir = temp_dir(self, "gost-e2e-certs-")

    def gost(self, *args, port=None, ports=None, name="gost", cwd=None, home=None):
        """Start gost with HOME = a fresh temp dir (or home) and cwd = a fresh temp dir (or cwd)."""
        if home is None:
            home = temp_dir(self, "gost-e2e-home-")
        return start_gost_in(self, *args, cwd=cwd, env_extra={"HOME": home}, port=port,
                             ports=ports, name=name)

    def assert_https_proxy_works(self, port, extra=(), msg=""):
        """curl through `-x https://127.0.0.1:port` (HTTP proxy over TLS): GET and CONNECT."""
        ex = ["--proxy-insecure"] + list(extra)
        r = curl(self.origin.url, proxy=https_proxy(port), extra=ex)
        self.assertEqual((r.rc, r.http_code, r.body), (0, "200", self.origin.body), "%s GET: %r" % (msg, r))
        r = curl(self.origin.url + "path/over-tls", proxy=https_proxy(port), tunnel=True, extra=ex)
        self.assertEqual((r.rc, r.http_connect, r.http_code, r.body),
                         (0, "200", "200", b"path=/path/over-tls"), "%s CONNECT: %r" % (msg, r))

    def assert_http_proxy_works(self, port, msg=""):
        """Plain HTTP proxy on port (the front of a chain): GET, CONNECT, raw CONNECT echo."""
        proxy = "http://127.0.0.1:%d" % port
        r = curl(self.origin.url, proxy=proxy)
        self.assertEqual((r.rc, r.http_code, r.body), (0, "200", self.origin.body), "%s GET: %r" % (msg, r))
        r = curl(self.origin.url + "path/chain", proxy=proxy, tunnel=True)
        self.assertEqual((r.rc, r.http_connect, r.http_code, r.body),
                         (0, "200", "200", b"path=/path/chain"), "%s CONNECT: %r" % (msg, r))
        s = connect(port)
        try:
            s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (self.echo.addr, self.echo.addr)).encode())
            self.assertEqual(recv_exact(s, len(RESP_200_CONNECT)), RESP_200_CONNECT, msg)
            payload = os.urandom(100000)
            s.sendall(payload)
            self.assertEqual(recv_exact(s, len(payload), timeout=15), payload, msg)
        finally:
            s.close()

    def assert_hop_carried(self, hop, msg=""):
        """assert_http_proxy_works's three tunnels went through the hop `hop` (GET and CONNECT to
        the origin, CONNECT to the echo server), not around it."""
        gostlib.assert_tunnels_through(self, hop, self.origin.addr, 2, msg)
        gostlib.assert_tunnels_through(self, hop, self.echo.addr, 1, msg)

    def assert_front_503(self, port, msg=""):
        """The front HTTP proxy cannot reach the target through its chain: 503 both ways."""
        proxy = "http://127.0.0.1:%d" % port
        r = curl(self.origin.url, proxy=proxy, timeout=20)
        self.assertEqual(r.http_code, "503", "%s GET: %r" % (msg, r))
        data, closed = request_until_close(port, ("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (self.echo.addr, self.echo.addr)).encode(), timeout=20)
        self.assertEqual(data, RESP_503_CONNECT, msg)
        self.assertTrue(closed, msg)
        data, closed = request_until_close(port, ("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (self.origin.url, self.origin.addr)).encode(), timeout=20)
        self.assertEqual(data, RESP_503_FORWARD, msg)
        self.assertTrue(closed, msg)


# --------------------------------------------------------------------------
# HTTP proxy over TLS, chains through a TLS hop
# --------------------------------------------------------------------------

class HTTPSProxyTest(TLSTestBase):

    def test_https_listener_get_and_connect(self):
        p = free_port()
        self.gost("-L", "https://127.0.0.1:%d" % p, port=p)
        self.assert_https_proxy_works(p, msg="https listener")
        self.assertEqual([r["path"] for r in self.origin.requests], ["/", "/path/over-tls"])

    def test_https_listener_raw_connect_inside_tls(self):
        p = free_port()
        self.gost("-L", "https://127.0.0.1:%d" % p, port=p)
        s = tls_connect(p)
        try:
            s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (self.echo.addr, self.echo.addr)).encode())
            self.assertEqual(recv_exact(s, len(RESP_200_CONNECT)), RESP_200_CONNECT)
            payload = os.urandom(200000)
            s.sendall(payload)
            self.assertEqual(recv_exact(s, len(payload), timeout=15), payload)
        finally:
            s.close()

    def test_https_listener_rejects_plain_http_client(self):
        p = free_port()
        self.gost("-L", "https://127.0.0.1:%d" % p, port=p)
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % p, timeout=8)
        self.assertNotEqual(r.rc, 0, r)
        self.assertNotEqual(r.http_code, "200", r)
        self.assertEqual(self.origin.requests, [])

    def test_https_listener_negotiates_tls13_no_alpn(self):
        p = free_port()
        self.gost("-L", "https://127.0.0.1:%d" % p, port=p)
        ctx = gostlib.insecure_client_context()
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        s = tls_connect(p, ctx=ctx)
        try:
            self.assertEqual(s.version(), "TLSv1.3")
            self.assertIsNone(s.selected_alpn_protocol(), "tls.md §6: the tls listener selects no ALPN")
        finally:
            s.close()


class TLSChainTest(TLSTestBase):

    def _chain(self):
        a, p = free_ports(2)
        hop = self.gost("-L", "https://127.0.0.1:%d" % p, port=p, name="tls-hop")
        tap = self.start_server(gostlib.TapProxy(p))
        self.gost("-L", "http://127.0.0.1:%d" % a, "-F", "https://127.0.0.1:%d" % tap.port,
                  port=a, name="front")
        return a, hop, tap

    def test_back_to_back_records_are_delivered_without_more_input(self):
        """A target that sends several small messages at once, then waits for an answer: every
        TLS record the client side of the hop has already received (read-ahead) must reach the
        client without further network input (a relay waiting on the socket would hang here)."""
        a, p = free_ports(2)
        hop = self.gost("-L", "https://127.0.0.1:%d" % p, port=p, name="tls-hop")
        self.gost("-L", "http://127.0.0.1:%d" % a, "-F", "https://127.0.0.1:%d" % p,
                  port=a, name="front")
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        self.addCleanup(srv.close)
        tport = srv.getsockname()[1]
        def serve():
            c, _ = srv.accept()
            with c:
                for round_ in range(20):
                    for i in range(3):
                        c.sendall(b"m%02d-%d;" % (round_, i))
                    if recv_exact(c, 3, timeout=10) != b"ack":
                        return
        t = threading.Thread(target=serve, daemon=True)
        t.start()
        s = connect(a)
        try:
            s.sendall(("CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n" % tport).encode())
            self.assertEqual(recv_exact(s, len(RESP_200_CONNECT)), RESP_200_CONNECT)
            for round_ in range(20):
                want = b"".join(b"m%02d-%d;" % (round_, i) for i in range(3))
                self.assertEqual(recv_exact(s, len(want), timeout=5), want, "round %d" % round_)
                s.sendall(b"ack")
        finally:
            s.close()
        t.join(5)
        self.assertFalse(t.is_alive(), "the target is still waiting for an ack")
        gostlib.assert_tunnels_through(self, hop, "127.0.0.1:%d" % tport, 1, "over the TLS hop")

    def test_chain_get_and_connect_over_tls_hop(self):
        a, hop, tap = self._chain()
        self.assert_http_proxy_works(a, "front -> https hop")
        # the hop really speaks TLS: the first bytes on the wire are a TLS handshake record
        first = tap.wait_capture(5)
        self.assertEqual(first[:1], b"\x16", "first byte to the hop is not a TLS handshake record: %r"
                         % first[:40])
        self.assertIn(first[1:3], (b"\x03\x01", b"\x03\x03"), first[:40])
        for cap in tap.captures:
            self.assertNotIn(b"CONNECT ", bytes(cap), "cleartext CONNECT seen on the TLS hop")
        self.assert_hop_carried(hop, "front -> https hop")
        # and it is on the path: without it the front answers 503
        hop.stop()
        self.assert_front_503(a, "TLS hop stopped")

    def test_chain_8MiB_both_directions_over_tls_hop(self):
        duplex = self.start_server(gostlib.DuplexServer(SIZE))
        a, hop, _ = self._chain()
        sock = connect(a, timeout=15)
        try:
            sock.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (duplex.addr, duplex.addr)).encode())
            self.assertEqual(recv_exact(sock, len(RESP_200_CONNECT), timeout=15), RESP_200_CONNECT)
            payload = os.urandom(SIZE)
            send_err = []

            def sender():
                try:
                    view = memoryview(payload)
                    off = 0
                    while off < len(view):
                        off += sock.send(view[off:off + 65536])
                    sock.shutdown(socket.SHUT_WR)
                except OSError as e:
                    send_err.append(e)

            sock.settimeout(TRANSFER_TIMEOUT)
            t = threading.Thread(target=sender, daemon=True)
            t.start()
            h = hashlib.sha256()
            total = 0
            closed = False
            deadline = time.monotonic() + TRANSFER_TIMEOUT
            while time.monotonic() < deadline:
                d = sock.recv(65536)
                if not d:
                    closed = True
                    break
                h.update(d)
                total += len(d)
            t.join(TRANSFER_TIMEOUT)
        finally:
            sock.close()
        self.assertFalse(t.is_alive(), "sender hung")
        self.assertEqual(send_err, [])
        self.assertTrue(closed, "no EOF after %d bytes" % total)
        rec = duplex.wait_record(lambda r: r["recv_len"] > 0, timeout=30)
        self.assertIsNotNone(rec, "target recorded no non-empty connection")
        self.assertIsNone(rec["error"])
        self.assertEqual(rec["recv_len"], SIZE, "target received %d bytes" % rec["recv_len"])
        self.assertEqual(rec["recv_sha"], hashlib.sha256(payload).hexdigest(), "client->target corrupted")
        self.assertEqual(total, SIZE, "client received %d bytes" % total)
        self.assertEqual(h.hexdigest(), rec["sent_sha"], "target->client corrupted")
        gostlib.assert_tunnels_through(self, hop, duplex.addr, 1, "8 MiB over the TLS hop")

    def test_tcp_forward_through_tls_hop(self):
        a, p = free_ports(2)
        hop = self.gost("-L", "https://127.0.0.1:%d" % p, port=p, name="tls-hop")
        fwd = self.gost("-L", "tcp://127.0.0.1:%d/%s" % (a, self.echo.addr),
                        "-F", "https://127.0.0.1:%d" % p, name="forwarder")
        # no readiness probe (a connection would be forwarded): wait for the LISTEN state
        self.assertTrue(gostlib.wait_listening(a, proc=fwd.proc), fwd.diagnostics())
        s = connect(a)
        try:
            payload = os.urandom(300000)
            s.sendall(payload)
            self.assertEqual(recv_exact(s, len(payload), timeout=15), payload)
        finally:
            s.close()
        gostlib.assert_tunnels_through(self, hop, self.echo.addr, 1, "forward over the TLS hop")

    def test_relay_over_tls_chain(self):
        # docs/PROTOCOLS.md "cli: schemes": relay+tls = relay handler/connector over the tls
        # listener/dialer
        a, p = free_ports(2)
        hop = self.gost("-L", "relay+tls://127.0.0.1:%d" % p, port=p, name="relay-tls-hop")
        tap = self.start_server(gostlib.TapProxy(p))
        self.gost("-L", "http://127.0.0.1:%d" % a, "-F", "relay+tls://127.0.0.1:%d" % tap.port,
                  port=a, name="front")
        self.assert_http_proxy_works(a, "front -> relay+tls hop")
        first = tap.wait_capture(3)
        self.assertEqual(first[:1], b"\x16", "relay+tls hop does not start with a TLS record: %r" % first[:20])
        self.assert_hop_carried(hop, "front -> relay+tls hop")

    def test_tls_scheme_on_F_is_http_over_tls(self):
        # docs/PROTOCOLS.md "cli: schemes": -F tls:// = connector http + dialer tls; meets -L
        # https://
        a, p = free_ports(2)
        hop = self.gost("-L", "https://127.0.0.1:%d" % p, port=p, name="tls-hop")
        self.gost("-L", "http://127.0.0.1:%d" % a, "-F", "tls://127.0.0.1:%d" % p, port=a, name="front")
        self.assert_http_proxy_works(a, "front -F tls://")
        self.assert_hop_carried(hop, "front -F tls://")


# --------------------------------------------------------------------------
# the default certificate (docs/PROTOCOLS.md "tls: default certificate")
# --------------------------------------------------------------------------

class DefaultCertificateTest(TLSTestBase):

    def test_generated_certificate_persisted_and_reused(self):
        home = temp_dir(self, "gost-e2e-home-")
        cwd1 = temp_dir(self, "gost-e2e-cwd-")
        p = free_port()
        g1 = self.gost("-L", "https://127.0.0.1:%d" % p, port=p, cwd=cwd1, home=home, name="gost-1")
        raw, x509 = s_client_text(p)
        # subject O=GOST, CN=gost.run
        self.assertRegex(raw, r"subject=.*CN ?= ?gost\.run", raw)
        self.assertRegex(raw, r"subject=.*O ?= ?GOST", raw)
        self.assertIn("Public Key Algorithm: id-ecPublicKey", x509)
        self.assertIn("Public-Key: (256 bit)", x509)
        self.assertTrue("prime256v1" in x509 or "P-256" in x509, x509)
        self.assertIn("Signature Algorithm: ecdsa-with-SHA256", x509)
        self.assertIn("DNS:gost.run", x509)
        served = der_fingerprint(served_cert_der(p))
        # persisted under $HOME/.gost with the documented modes
        gdir = os.path.join(home, ".gost")
        certf = os.path.join(gdir, "auto-ca-cert.pem")
        keyf = os.path.join(gdir, "auto-ca-key.pem")
        self.assertTrue(os.path.isfile(certf), "missing %s" % certf)
        self.assertTrue(os.path.isfile(keyf), "missing %s" % keyf)
        self.assertEqual(stat.S_IMODE(os.stat(certf).st_mode), 0o644, "cert mode")
        self.assertEqual(stat.S_IMODE(os.stat(keyf).st_mode), 0o600, "key mode")
        self.assertEqual(stat.S_IMODE(os.stat(gdir).st_mode), 0o700, "dir mode")
        self.assertEqual(pem_file_fingerprint(certf), served, "served cert differs from the persisted one")
        # the key file is the private key of that certificate
        pub_from_key = openssl_cmd("pkey", "-in", keyf, "-pubout")
        pub_from_cert = openssl_cmd("x509", "-in", certf, "-pubkey", "-noout")
        self.assertEqual(pub_from_key, pub_from_cert)
        with open(keyf) as f:
            self.assertIn("-----BEGIN PRIVATE KEY-----", f.read(), "PKCS#8 PEM expected (tls.md §3)")
        # nothing written into the working directory
        self.assertEqual(sorted(os.listdir(cwd1)), [])
        g1.stop()
        # second start (other working directory, same HOME): same certificate
        p2 = free_port()
        self.gost("-L", "https://127.0.0.1:%d" % p2, port=p2, cwd=temp_dir(self), home=home, name="gost-2")
        self.assertEqual(der_fingerprint(served_cert_der(p2)), served, "second start serves another cert")
        self.assertEqual(pem_file_fingerprint(certf), served, "persisted cert was replaced")

    def test_two_services_one_process_same_default_certificate(self):
        p, q = free_ports(2)
        self.gost("-L", "https://127.0.0.1:%d" % p, "-L", "tls://127.0.0.1:%d" % q, ports=[p, q])
        self.assertEqual(der_fingerprint(served_cert_der(p)), der_fingerprint(served_cert_der(q)))

    def test_cert_pem_in_working_directory_is_served(self):
        cwd = temp_dir(self, "gost-e2e-cwd-")
        cert, key = make_self_signed(cwd, "x", "test.local")
        os.rename(cert, os.path.join(cwd, "cert.pem"))
        os.rename(key, os.path.join(cwd, "key.pem"))
        expected = pem_file_fingerprint(os.path.join(cwd, "cert.pem"))
        # HOME already holds a persisted auto certificate: cert.pem/key.pem win (order 2 before 3)
        home = temp_dir(self, "gost-e2e-home-")
        p0 = free_port()
        g0 = self.gost("-L", "https://127.0.0.1:%d" % p0, port=p0, home=home, name="gost-gen")
        auto = der_fingerprint(served_cert_der(p0))
        g0.stop()
        self.assertNotEqual(auto, expected)
        p = free_port()
        self.gost("-L", "https://127.0.0.1:%d" % p, port=p, cwd=cwd, home=home, name="gost-cwd")
        raw, _ = s_client_text(p)
        self.assertRegex(raw, r"subject=.*CN ?= ?test\.local", raw)
        self.assertEqual(der_fingerprint(served_cert_der(p)), expected)
        self.assert_https_proxy_works(p, msg="cwd cert.pem")

    def test_cert_pem_in_working_directory_nothing_generated(self):
        cwd = temp_dir(self, "gost-e2e-cwd-")
        cert, key = make_self_signed(cwd, "x", "test.local")
        os.rename(cert, os.path.join(cwd, "cert.pem"))
        os.rename(key, os.path.join(cwd, "key.pem"))
        home = temp_dir(self, "gost-e2e-home-")
        p = free_port()
        self.gost("-L", "https://127.0.0.1:%d" % p, port=p, cwd=cwd, home=home)
        self.assertEqual(der_fingerprint(served_cert_der(p)), pem_file_fingerprint(os.path.join(cwd, "cert.pem")))
        self.assertFalse(os.path.exists(os.path.join(home, ".gost", "auto-ca-cert.pem")),
                         "a certificate was generated although cert.pem/key.pem exist")

    def test_persisted_certificate_is_loaded_not_regenerated(self):
        # order 3: an existing $HOME/.gost pair (here: an RSA one made by openssl) is used as is
        home = temp_dir(self, "gost-e2e-home-")
        gdir = os.path.join(home, ".gost")
        os.mkdir(gdir, 0o700)
        cert, key = make_self_signed(self.certdir, "persisted", "persisted.local")
        os.rename(cert, os.path.join(gdir, "auto-ca-cert.pem"))
        os.rename(key, os.path.join(gdir, "auto-ca-key.pem"))
        expected = pem_file_fingerprint(os.path.join(gdir, "auto-ca-cert.pem"))
        p = free_port()
        self.gost("-L", "https://127.0.0.1:%d" % p, port=p, home=home)
        self.assertEqual(der_fingerprint(served_cert_der(p)), expected)
        self.assertEqual(pem_file_fingerprint(os.path.join(gdir, "auto-ca-cert.pem")), expected)


# --------------------------------------------------------------------------
# listener options certFile / keyFile / caFile (docs/PROTOCOLS.md "tls: server and client",
# "tls: options")
# --------------------------------------------------------------------------

class ListenerCertOptionsTest(TLSTestBase):

    def setUp(self):
        super().setUp()
        d = self.certdir
        self.ca, self.ca_key = make_self_signed(d, "ca", "Test CA")
        self.srv, self.srv_key = make_signed(d, "server", "server.test", self.ca, self.ca_key)
        self.cli, self.cli_key = make_signed(d, "client", "client.test", self.ca, self.ca_key)
        self.other_ca, self.other_ca_key = make_self_signed(d, "otherca", "Other CA")
        self.rogue, self.rogue_key = make_signed(d, "rogue", "rogue.test", self.other_ca, self.other_ca_key)

    def test_certfile_keyfile_served(self):
        p = free_port()
        self.gost("-L", "https://127.0.0.1:%d?certFile=%s&keyFile=%s" % (p, self.srv, self.srv_key), port=p)
        self.assertEqual(der_fingerprint(served_cert_der(p)), pem_file_fingerprint(self.srv))
        raw, _ = s_client_text(p)
        self.assertRegex(raw, r"subject=.*CN ?= ?server\.test", raw)
        self.assert_https_proxy_works(p, msg="certFile")
        # curl verifying against the CA (with the name in the certificate) also works
        r = curl(self.origin.url, proxy="https://server.test:%d" % p,
                 extra=["--proxy-cacert", self.ca, "--resolve", "server.test:%d:127.0.0.1" % p])
        self.assertEqual((r.rc, r.http_code, r.body), (0, "200", self.origin.body), r)

    def test_cert_key_aliases(self):
        p = free_port()
        self.gost("-L", "https://127.0.0.1:%d?cert=%s&key=%s" % (p, self.srv, self.srv_key), port=p)
        self.assertEqual(der_fingerprint(served_cert_der(p)), pem_file_fingerprint(self.srv))

    def test_cafile_requires_client_certificate(self):
        p = free_port()
        self.gost("-L", "https://127.0.0.1:%d?certFile=%s&keyFile=%s&caFile=%s"
                  % (p, self.srv, self.srv_key, self.ca), port=p)
        # no client certificate -> refused
        r = curl(self.origin.url, proxy=https_proxy(p), extra=["--proxy-insecure"], timeout=8)
        self.assertNotEqual(r.rc, 0, r)
        self.assertNotEqual(r.http_code, "200", r)
        # certificate from another CA -> refused
        r = curl(self.origin.url, proxy=https_proxy(p), timeout=8,
                 extra=["--proxy-insecure", "--proxy-cert", self.rogue, "--proxy-key", self.rogue_key])
        self.assertNotEqual(r.rc, 0, r)
        self.assertNotEqual(r.http_code, "200", r)
        self.assertEqual(self.origin.requests, [], "a request without a valid client cert was proxied")
        # certificate signed by the CA -> accepted
        self.assert_https_proxy_works(p, extra=["--proxy-cert", self.cli, "--proxy-key", self.cli_key],
                                      msg="client cert from caFile CA")
        # python client: no certificate -> the connection fails before any proxy reply
        s = tls_connect(p)
        try:
            s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (self.origin.url, self.origin.addr)).encode())
            try:
                data, closed, _ = recv_until_close(s, timeout=10)
            except ssl.SSLError:
                data, closed = b"", True
        except ssl.SSLError:
            data, closed = b"", True
        finally:
            s.close()
        self.assertEqual(data, b"")
        self.assertTrue(closed)
        self.assertEqual(len(self.origin.requests), 2)  # only the two of assert_https_proxy_works

    def test_dialer_client_certificate(self):
        a, b, p = free_ports(3)
        self.gost("-L", "https://127.0.0.1:%d?certFile=%s&keyFile=%s&caFile=%s"
                  % (p, self.srv, self.srv_key, self.ca), port=p, name="mtls-hop")
        self.gost("-L", "http://127.0.0.1:%d" % a,
                  "-F", "https://127.0.0.1:%d?certFile=%s&keyFile=%s" % (p, self.cli, self.cli_key),
                  port=a, name="front-with-cert")
        self.gost("-L", "http://127.0.0.1:%d" % b, "-F", "https://127.0.0.1:%d" % p,
                  port=b, name="front-without-cert")
        self.assert_http_proxy_works(a, "front with client certificate")
        n = len(self.origin.requests)
        self.assert_front_503(b, "front without client certificate")
        self.assertEqual(len(self.origin.requests), n)


# --------------------------------------------------------------------------
# dialer options secure / caFile / serverName (docs/PROTOCOLS.md "tls: server and client")
# --------------------------------------------------------------------------

class DialerVerificationTest(TLSTestBase):

    def test_secure_and_ca_pinning_against_default_certificate(self):
        home = temp_dir(self, "gost-e2e-home-")
        p = free_port()
        self.gost("-L", "https://127.0.0.1:%d" % p, port=p, home=home, name="tls-hop")
        gen = os.path.join(home, ".gost", "auto-ca-cert.pem")
        self.assertTrue(os.path.isfile(gen), "default certificate not persisted")
        other_ca, _ = make_self_signed(self.certdir, "other", "gost.run")
        f_secure, f_pin, f_wrongpin, f_pin_secure_name, f_plain, f_pin_secure_wrong = free_ports(6)
        fronts = [
            (f_secure, "https://127.0.0.1:%d?secure=true" % p),
            (f_pin, "https://127.0.0.1:%d?caFile=%s" % (p, gen)),
            (f_wrongpin, "https://127.0.0.1:%d?caFile=%s" % (p, other_ca)),
            (f_pin_secure_name, "https://127.0.0.1:%d?caFile=%s&secure=true&serverName=gost.run" % (p, gen)),
            (f_plain, "https://127.0.0.1:%d" % p),
            (f_pin_secure_wrong, "https://127.0.0.1:%d?caFile=%s&secure=true&serverName=wrong.example" % (p, gen)),
        ]
        for port, node in fronts:
            self.gost("-L", "http://127.0.0.1:%d" % port, "-F", node, port=port, name="front " + node)
        # default: no verification
        self.assert_http_proxy_works(f_plain, "no verification (default)")
        # pinned CA, hostname not checked (IP literal, cert only has DNS:gost.run)
        self.assert_http_proxy_works(f_pin, "caFile pinning")
        # secure + pinned CA + matching serverName
        self.assert_http_proxy_works(f_pin_secure_name, "secure+caFile+serverName=gost.run")
        n = len(self.origin.requests)
        c = self.echo.connections
        # self-signed, unknown to the system store
        self.assert_front_503(f_secure, "secure=true against self-signed")
        # pinned to another CA
        self.assert_front_503(f_wrongpin, "caFile of another CA")
        # secure=true checks the name: wrong.example is not in the certificate
        self.assert_front_503(f_pin_secure_wrong, "secure=true+caFile, serverName not in certificate")
        self.assertEqual(len(self.origin.requests), n, "a rejected hop still reached the origin")
        self.assertEqual(self.echo.connections, c, "a rejected hop still reached the echo server")

    def test_secure_with_ca_and_ip_san(self):
        # the positive counterpart: a certificate with IP:127.0.0.1 verifies for node 127.0.0.1
        ca, ca_key = make_self_signed(self.certdir, "ca", "Test CA")
        good, good_key = make_signed(self.certdir, "ipsan", "ip.test", ca, ca_key, san="IP:127.0.0.1")
        p, a = free_ports(2)
        self.gost("-L", "https://127.0.0.1:%d?certFile=%s&keyFile=%s" % (p, good, good_key), port=p, name="tls-hop")
        self.gost("-L", "http://127.0.0.1:%d" % a,
                  "-F", "https://127.0.0.1:%d?caFile=%s&secure=true" % (p, ca), port=a, name="front")
        self.assert_http_proxy_works(a, "secure=true, CA-signed cert with IP SAN")

    def test_secure_verifies_ip_literal_node_address(self):
        # docs/PROTOCOLS.md "tls: server and client": secure=true = full verification incl. the
        # name; the verification name defaults to the node host, here the IP 127.0.0.1, which the
        # default certificate (SAN DNS:gost.run only, no IP SANs: "tls: default certificate") does
        # not contain -> handshake fails.
        home = temp_dir(self, "gost-e2e-home-")
        p, a = free_ports(2)
        self.gost("-L", "https://127.0.0.1:%d" % p, port=p, home=home, name="tls-hop")
        gen = os.path.join(home, ".gost", "auto-ca-cert.pem")
        self.assertTrue(os.path.isfile(gen), "default certificate not persisted")
        self.gost("-L", "http://127.0.0.1:%d" % a,
                  "-F", "https://127.0.0.1:%d?caFile=%s&secure=true" % (p, gen), port=a, name="front")
        self.assert_front_503(a, "secure=true+caFile, IP 127.0.0.1 not in certificate")
        self.assertEqual(self.origin.requests, [])
        self.assertEqual(self.echo.connections, 0)


class DialerSNITest(TLSTestBase):
    """What the tls dialer sends as SNI (docs/PROTOCOLS.md "tls: server and client"), seen by a
    Python TLS server that plays the next HTTP proxy (answers the CONNECT with 200 and echoes)."""

    def setUp(self):
        super().setUp()
        self.cert, self.key = make_self_signed(self.certdir, "py", "test.local")
        self.tls = self.start_server(gostlib.TLSRecordingServer(self.cert, self.key, mode="connect"))

    def _forward_and_check(self, node, target="127.0.0.1:1"):
        a = free_port()
        self.gost("-L", "tcp://127.0.0.1:%d/%s" % (a, target), "-F", node, port=a, name="forwarder")
        s = connect(a)
        try:
            s.sendall(b"ping over tls")
            self.assertEqual(recv_exact(s, 13, timeout=10), b"ping over tls")
        finally:
            s.close()
        self.assertTrue(wait_until(lambda: len(self.tls.heads) >= 1, 5), "no CONNECT reached the TLS server")
        self.assertTrue(self.tls.heads[-1].startswith(b"CONNECT %s HTTP/1.1\r\n" % target.encode()),
                        self.tls.heads[-1])
        with self.tls.lock:
            return list(self.tls.snis)

    def test_server_name_option_is_sent_as_sni(self):
        snis = self._forward_and_check("https://127.0.0.1:%d?serverName=foo.example" % self.tls.port)
        self.assertTrue(snis)
        self.assertEqual(set(snis), {"foo.example"}, snis)

    def test_ip_literal_sends_no_sni(self):
        snis = self._forward_and_check("https://127.0.0.1:%d" % self.tls.port)
        self.assertTrue(snis)
        self.assertEqual(set(snis), {None}, snis)

    def test_host_name_is_sent_as_sni(self):
        snis = self._forward_and_check("https://localhost:%d" % self.tls.port)
        self.assertTrue(snis)
        self.assertEqual(set(snis), {"localhost"}, snis)


# --------------------------------------------------------------------------
# bad input on the TLS listener
# --------------------------------------------------------------------------

class TLSListenerBadInputTest(TLSTestBase):

    def setUp(self):
        super().setUp()
        self.port = free_port()
        self.g = self.gost("-L", "https://127.0.0.1:%d" % self.port, port=self.port)

    def _send_expect_close(self, data, within=5.0, label=""):
        s = connect(self.port)
        try:
            s.sendall(data)
            got, closed, elapsed = recv_until_close(s, timeout=within + 5)
        finally:
            s.close()
        self.assertTrue(closed, "%s: connection not closed within %.0fs" % (label, within + 5))
        self.assertLess(elapsed, within, "%s: closed only after %.1fs" % (label, elapsed))
        self.assertFalse(got.startswith(b"HTTP/"), "%s: got an HTTP reply on a TLS port: %r" % (label, got[:80]))
        if got:
            # only a TLS alert record may come back
            self.assertEqual(got[:1], b"\x15", "%s: unexpected bytes %r" % (label, got[:40]))
        return got

    def test_plain_http_request_is_closed(self):
        self._send_expect_close(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (self.origin.url, self.origin.addr)).encode(),
                                label="plain HTTP")
        self._send_expect_close(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (self.echo.addr, self.echo.addr)).encode(),
                                label="plain CONNECT")
        self.assertEqual(self.origin.requests, [])
        self.assertEqual(self.echo.connections, 0)
        self.assertAlive(self.g)
        self.assert_https_proxy_works(self.port, msg="after plain HTTP")

    def test_garbage_is_closed_promptly(self):
        self._send_expect_close(b"\xde\xad\xbe\xef" * 300, label="garbage")
        # a handshake record header with an absurd length and junk body
        self._send_expect_close(b"\x16\x03\x01\xff\xff" + b"\x00" * 200 + b"\xff" * 20000, within=5,
                                label="bogus handshake record")
        # application data before any handshake
        self._send_expect_close(b"\x17\x03\x03\x00\x05hello", label="app data first")
        self.assertAlive(self.g)
        self.assert_https_proxy_works(self.port, msg="after garbage")

    def test_client_hello_then_close_and_truncated_hello(self):
        hello = client_hello("test.local")
        # whole ClientHello, then the client closes at once
        s = connect(self.port)
        s.sendall(hello)
        s.close()
        # a truncated ClientHello then silence: others are still served while it hangs
        hang = connect(self.port)
        try:
            hang.sendall(hello[:len(hello) // 2])
            time.sleep(0.3)
            self.assert_https_proxy_works(self.port, msg="while a truncated ClientHello hangs")
            s2 = tls_connect(self.port)
            s2.close()
        finally:
            hang.close()
        # truncated ClientHello then EOF -> closed promptly
        s = connect(self.port)
        try:
            s.sendall(hello[:60])
            s.shutdown(socket.SHUT_WR)
            got, closed, elapsed = recv_until_close(s, timeout=10)
        finally:
            s.close()
        self.assertTrue(closed, "truncated hello + EOF not closed")
        self.assertLess(elapsed, 5)
        self.assertFalse(got.startswith(b"HTTP/"), got[:80])
        self.assertAlive(self.g)
        self.assert_https_proxy_works(self.port, msg="after truncated hellos")

    def test_many_aborted_handshakes(self):
        hello = client_hello(None)
        for i in range(50):
            s = connect(self.port)
            try:
                s.sendall(hello[: (i * 37) % len(hello) + 1])
            finally:
                s.close()
        for _ in range(20):
            s = connect(self.port)
            s.close()
        self.assertAlive(self.g)
        self.assert_https_proxy_works(self.port, msg="after aborted handshakes")


if __name__ == "__main__":
    gostlib.main()

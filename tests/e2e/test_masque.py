#!/usr/bin/env python3
"""MASQUE over HTTP/3 (docs/PROTOCOLS.md "masque"): handler masque on listener http3, connector
masque with dialer h3-masque — GOST's development line's names (`-L masque+http3://user:pass@:P`,
`-F masque+h3-masque://user:pass@server:P`).

TCP (CONNECT): curl through `-L http -F masque+h3-masque://`, 8 MiB both ways with checksums and a
half-close, 100 tunnels at once on one QUIC connection per worker, the server restarted under a
running client. UDP (CONNECT-UDP, RFC 9298): `-L udp://` forwarding (1,000 DNS-like exchanges of
1–1,400 bytes compared byte for byte, loss counted; a 4,000-byte datagram that no QUIC packet
carries goes as a DATAGRAM capsule) and SOCKS5 UDP ASSOCIATE through masque (two targets: one
flow each). The server's answers, from tests/tools/masque_probe (what our connector never sends):
405 for another method, 407 with Proxy-Authenticate, 403 for the bypass, 503 for a failed dial,
400 for another :protocol, a bad UDP path or no capsule-protocol; datagrams echoed both as QUIC
DATAGRAM frames and as capsules; an over-long capsule ends that stream only. PHT clients of the
same listener are still served. Config: the connector/dialer pair is enforced, -O yaml names it.

Usage: test_masque.py <path-to-gost>
"""

import os
import socket
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gostlib  # noqa: E402
import test_h3  # noqa: E402
import udplib  # noqa: E402
from gostlib import UdpEchoServer, free_port, run_gost  # noqa: E402

WORKERS = os.cpu_count() or 1
AUTH = "user:pass"


def probe_path():
    """tests/tools/masque_probe, built next to the gost binary's tests/ directory."""
    return os.path.join(os.path.dirname(gostlib.GOST_BIN), "tests", "masque_probe")


def basic(cred=AUTH):
    import base64
    return "proxy-authorization=Basic " + base64.b64encode(cred.encode()).decode()


def udp_head(path, capsule=True, cred=AUTH):
    h = [":method=CONNECT", ":protocol=connect-udp", ":scheme=https", ":authority=localhost",
         ":path=" + path]
    if capsule:
        h.append("capsule-protocol=?1")
    if cred:
        h.append(basic(cred))
    return h


class MasqueTestBase(test_h3.H3TestBase):

    def masque_server(self, query="", udp=None, name="server", auth=AUTH, debug=False):
        udp = udp or udplib.free_udp_port()
        url = "masque+http3://%s127.0.0.1:%d" % (auth + "@" if auth else "", udp)
        if query:
            url += "?" + query
        args = (["-D"] if debug else []) + ["-L", url]
        return udp, self.gost(*args, name=name, udp=udp)

    def node(self, udp, query="", auth=AUTH):
        url = "masque+h3-masque://%s127.0.0.1:%d" % (auth + "@" if auth else "", udp)
        return url + ("?" + query if query else "")

    def masque_pair(self, server_query="", client_query=""):
        udp, server = self.masque_server(server_query)
        front = free_port()
        client = self.gost("-L", "http://127.0.0.1:%d" % front, "-F", self.node(udp, client_query),
                           port=front, name="client")
        return front, udp, server, client

    def probe(self, udp, head, *extra):
        exe = probe_path()
        if not os.access(exe, os.X_OK):
            self.skipTest("tests/tools/masque_probe is not built (%s)" % exe)
        r = subprocess.run([exe, "127.0.0.1:%d" % udp] + list(head) + list(extra),
                           capture_output=True, timeout=60, env=dict(os.environ, HOME=self.home))
        lines = {}
        for line in r.stdout.decode(errors="replace").splitlines():
            if line.startswith(("status ", "datagram ", "ended ", "body ", "error ")):
                k, _, v = line.partition(" ")
            else:
                k, _, v = line.partition(": ")
            lines[k] = v
        return lines, r

    def udp_forwarder(self, udp, target, query="keepAlive=true"):
        port = udplib.free_udp_port()
        url = "udp://127.0.0.1:%d/%s" % (port, target) + ("?" + query if query else "")
        p = self.gost("-L", url, "-F", self.node(udp), name="udp-forwarder", udp=port)
        return port, p


class MasqueTcpTest(MasqueTestBase):

    def test_curl_8MiB_both_ways_and_half_close(self):
        front, _, server, _ = self.masque_pair()
        self.assert_curl_ok(front, "masque (plain request)")
        self.assert_curl_ok(front, "masque (CONNECT, 1 MiB)", big=True, tunnel_mode=True)
        self.both_ways_and_half_close(front, "masque", test_h3.tunnel)
        self.assertAlive(server)
        self.assert_through(server, self.origin.addr, 2, "masque")
        for target in (self.duplex.addr, self.halfsrv.addr):
            self.assert_through(server, target, 1, "masque")

    def test_100_concurrent_tunnels_over_one_connection_per_worker(self):
        front, _, server, client = self.masque_pair("maxStreams=128")
        ok, errors, elapsed = self.run_connect_batch(front, 100)
        self.check_batch(ok, errors, elapsed, 100)
        n = udplib.udp_socket_count(client.pid)
        sys.stderr.write("100 concurrent masque tunnels in %.2fs; client UDP sockets: %d (%d "
                         "workers)\n" % (elapsed, n, WORKERS))
        self.assertGreaterEqual(n, 1)
        # One connection per worker, or two where more than a connection's expected share of the
        # burst (net/session_pool per_session, 50) waited for the first handshake: never one per
        # tunnel.
        self.assertLessEqual(n, 2 * WORKERS, "%d QUIC connections for %d workers" % (n, WORKERS))
        self.assertAlive(server)

    def test_wrong_password_fails_and_the_origin_is_not_reached(self):
        udp, server = self.masque_server()
        front = free_port()
        client = self.gost("-L", "http://127.0.0.1:%d" % front, "-F",
                           self.node(udp, auth="user:wrong"), port=front, name="client")
        self.assert_curl_fails(front, "wrong password")
        gostlib.wait_until(lambda: "authentication failed" in server.stderr_text(), 5)
        self.assertIn("authentication failed", server.stderr_text())
        self.assertIn("407", client.stderr_text())
        self.assertAlive(server)

    def test_pht_clients_of_the_same_listener(self):
        """`-L masque+http3://` serves PHT over HTTP/3 beside MASQUE: a `-F http3://` client's
        tunnels go to handler auto."""
        udp, server = self.masque_server(auth="")
        front, _ = self.client("http3", udp)
        self.assert_curl_ok(front, "PHT client of a masque listener")
        front2 = free_port()
        self.gost("-L", "http://127.0.0.1:%d" % front2, "-F", self.node(udp, auth=""),
                  port=front2, name="masque-client")
        self.assert_curl_ok(front2, "masque client of the same listener")
        self.assertAlive(server)

    def check_restart(self, kill):
        udp, server = self.masque_server()
        front = free_port()
        client = self.gost("-L", "http://127.0.0.1:%d" % front, "-F",
                           self.node(udp, "maxIdleTimeout=5s&keepAlive=true&ttl=1s"), port=front,
                           name="client")
        self.restart_and_reconnect(front, server, client, kill,
                                   lambda: self.masque_server(udp=udp, name="server-2"),
                                   "masque", check_gone=True)

    def test_server_killed_and_restarted_client_reconnects(self):
        self.check_restart(kill=True)


class MasqueUdpTestBase(MasqueTestBase):
    """With a UDP echo target."""

    def setUp(self):
        super().setUp()
        self.uecho = UdpEchoServer()
        self.addCleanup(self.uecho.close)


class MasqueUdpTest(MasqueUdpTestBase):

    def test_udp_forwarding_1000_datagrams(self):
        udp, server = self.masque_server(debug=True)
        port, _ = self.udp_forwarder(udp, "127.0.0.1:%d" % self.uecho.port)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        u.settimeout(2.0)
        self.addCleanup(u.close)
        ok, lost, wrong = 0, 0, 0
        for i in range(1000):
            data = os.urandom(1 + (i * 37) % 1400)
            u.sendto(data, ("127.0.0.1", port))
            try:
                got, _ = u.recvfrom(65536)
            except socket.timeout:
                lost += 1
                if lost > 20:
                    break
                continue
            if got == b"echo:" + data:
                ok += 1
            else:
                wrong += 1
        sys.stderr.write("masque udp: %d answered, %d lost, %d wrong of 1000\n" % (ok, lost, wrong))
        self.assertEqual(wrong, 0)
        self.assertLessEqual(lost, 5, "%d of 1,000 datagrams lost on loopback" % lost)
        # a datagram no QUIC packet carries goes as a DATAGRAM capsule on the stream
        big = os.urandom(4000)
        u.sendto(big, ("127.0.0.1", port))
        got, _ = u.recvfrom(65536)
        self.assertEqual(got, b"echo:" + big)
        # the flow went through the server (its debug line names the target)
        self.assertIn("<-> 127.0.0.1:%d/udp" % self.uecho.port, server.stderr_text())
        self.assertAlive(server)

    def test_socks5_udp_associate_through_masque(self):
        """SOCKS5 UDP ASSOCIATE in front, masque behind: datagrams to two targets, each answered
        by its own target (one CONNECT-UDP flow per target)."""
        other = UdpEchoServer(answers=lambda d: [b"other:" + d])
        self.addCleanup(other.close)
        udp, server = self.masque_server()
        front = free_port()
        self.gost("-L", "socks5://127.0.0.1:%d?udp=true" % front, "-F", self.node(udp),
                  port=front, name="socks5-front")
        ctl = socket.create_connection(("127.0.0.1", front), timeout=10)
        self.addCleanup(ctl.close)
        ctl.sendall(b"\x05\x01\x00")
        self.assertEqual(gostlib.recv_exact(ctl, 2), b"\x05\x00")
        ctl.sendall(b"\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00")
        rep = gostlib.recv_exact(ctl, 10)
        self.assertEqual(rep[:2], b"\x05\x00", rep)
        relay_port = struct.unpack("!H", rep[8:10])[0]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        u.settimeout(3.0)
        self.addCleanup(u.close)

        def header(port):
            return b"\x00\x00\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", port)

        for i in range(500):  # 1,000 datagrams in all, each answered
            for port, prefix in ((self.uecho.port, b"echo:"), (other.port, b"other:")):
                data = b"q%d-" % i + os.urandom(64)
                u.sendto(header(port) + data, ("127.0.0.1", relay_port))
                got, _ = u.recvfrom(65536)
                self.assertEqual(got, header(port) + prefix + data)
        self.assertAlive(server)


class MasqueServerAnswersTest(MasqueUdpTestBase):
    """go-gost/x handler/masque's answers, and hostile requests."""

    def test_answers(self):
        udp, server = self.masque_server("bypass=10.0.0.0/8")
        closed = free_port()
        target = "127.0.0.1:%d" % self.uecho.port
        cases = [
            ("GET", [":method=GET", ":scheme=https", ":authority=x", ":path=/x"], "405"),
            ("no credentials", [":method=CONNECT", ":authority=" + self.origin.addr], "407"),
            ("wrong password", [":method=CONNECT", ":authority=" + self.origin.addr,
                                basic("user:nope")], "407"),
            ("bypassed", [":method=CONNECT", ":authority=10.1.2.3:80", basic()], "403"),
            ("dial fails", [":method=CONNECT", ":authority=127.0.0.1:%d" % closed, basic()],
             "503"),
            ("other protocol", [":method=CONNECT", ":protocol=websocket", ":scheme=https",
                                ":authority=x", ":path=/", basic()], "400"),
            ("no capsule-protocol", udp_head("/.well-known/masque/udp/127.0.0.1/53/",
                                             capsule=False), "400"),
            ("bad udp path", udp_head("/.well-known/masque/udp/127.0.0.1/"), "400"),
            ("port 0", udp_head("/.well-known/masque/udp/127.0.0.1/0/"), "400"),
            ("bypassed udp", udp_head("/.well-known/masque/udp/10.9.9.9/53/"), "403"),
            ("udp without credentials", udp_head("/.well-known/masque/udp/%s/%d/"
                                                 % ("127.0.0.1", self.uecho.port), cred=None),
             "407"),
        ]
        for label, head, status in cases:
            with self.subTest(label):
                lines, r = self.probe(udp, head)
                self.assertEqual(lines.get("status"), status, r)
                self.assertEqual(lines.get("body"), "", r)  # a complete answer, not a reset
                if status == "407":
                    self.assertEqual(lines.get("proxy-authenticate"), 'Basic realm="gost"', r)
        # success: the tunnel's answer, then datagrams both ways (QUIC DATAGRAM and capsule)
        path = "/.well-known/masque/udp/127.0.0.1/%d/" % self.uecho.port
        lines, r = self.probe(udp, udp_head(path), "--udp", "hello")
        self.assertEqual((lines.get("status"), lines.get("capsule-protocol")), ("200", "?1"), r)
        self.assertEqual(lines.get("datagram"), "echo:hello", r)
        lines, r = self.probe(udp, udp_head(path), "--udp", "capsule", "--capsule")
        self.assertEqual(lines.get("datagram"), "echo:capsule", r)
        # a host given percent-escaped (RFC 9298 templates escape more than Go does)
        lines, r = self.probe(udp, udp_head("/.well-known/masque/udp/127%%2E0.0.1/%d/"
                                            % self.uecho.port), "--udp", "esc")
        self.assertEqual(lines.get("datagram"), "echo:esc", r)
        self.assertIn(target + "/udp", server.stderr_text())
        self.assertAlive(server)

    def test_over_long_capsule_ends_that_stream_only(self):
        udp, server = self.masque_server()
        path = "/.well-known/masque/udp/127.0.0.1/%d/" % self.uecho.port
        lines, r = self.probe(udp, udp_head(path), "--junk-capsule")
        self.assertEqual(lines.get("status"), "200", r)
        self.assertEqual(lines.get("ended"), "reset", r)
        lines, r = self.probe(udp, udp_head(path), "--udp", "after")
        self.assertEqual(lines.get("datagram"), "echo:after", r)
        self.assertAlive(server)


class MasqueConfigTest(MasqueTestBase):

    def test_pairing_and_yaml(self):
        udp = udplib.free_udp_port()
        for args, want in [
            (["-L", "http://127.0.0.1:%d" % free_port(), "-F",
              "http+h3-masque://127.0.0.1:%d" % udp], "h3-masque"),
            (["-L", "http://127.0.0.1:%d" % free_port(), "-F",
              "masque+h3://127.0.0.1:%d" % udp], "masque"),
            (["-L", "http://127.0.0.1:%d" % free_port(), "-F",
              "masque+h3-masque://127.0.0.1:%d?timeout=abc" % udp], "timeout"),
        ]:
            with self.subTest(want=want):
                test_h3.H3ConfigTest.expect_config_error(self, args, want)
        r = run_gost(["-L", "masque+http3://u:p@:8443", "-F", "masque+h3-masque://u:p@host:8443",
                      "-O", "yaml"])
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 0, r)
        for want in ("type: masque", "type: http3", "type: h3-masque"):
            self.assertIn(want, out)


if __name__ == "__main__":
    gostlib.main()

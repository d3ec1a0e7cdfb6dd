"""PHT over HTTP/3 (docs/PROTOCOLS.md "http3", "pht", "tls", "cli"): listeners `h3` and
`http3` (seed semantics: handler auto + listener http3 = PHT over HTTP/3), dialers `http3`/`h3`.

Our client against our server: the seed pair with curl (both server spellings, both dialer
names), relay+h3 / socks5+h3 with 8 MiB both ways and half-close, 100 concurrent tunnels on
pooled QUIC connections (one per worker while the stream limit allows), the server's stream
limit, idle timeout and keep-alive, handshake timeout, a server restart / kill / freeze, prompt
EOF both ways, packet loss and reordering (an in-process lossy UDP relay), the TLS options, the
YAML form, bad option values. Hand-made datagrams against the server (garbage, version negotiation,
unknown versions, junk and real Initial floods, stateless-reset look-alikes) and against the
client. Debian's ngtcp2 example client (gtlsclient) as an independent HTTP/3 client.

Every gost process runs with HOME and the working directory in a fresh temporary directory, so
the default certificate (docs/PROTOCOLS.md "tls: default certificate") never touches the real
$HOME/.gost.

Run: /usr/bin/python3 tests/e2e/test_h3.py <path-to-gost>
"""

import os
import re
import select
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gostlib  # noqa: E402
import test_integrity  # noqa: E402
import test_pht  # noqa: E402
import transportlib  # noqa: E402
import udplib  # noqa: E402
from gostlib import (START_TIMEOUT, curl, describe_rc, free_port, make_self_signed,  # noqa: E402
                     make_signed, recv_exact, start_gost_in, temp_dir)

PATHS = "authorizePath=/authorize&pushPath=/push&pullPath=/pull"
LOSSY_BOUND = 75.0
RESTART_WINDOW = 40.0
WORKERS = os.cpu_count() or 1


def tunnel(testcase, front, target):
    return test_integrity.open_connect_tunnel(testcase, front, target)


def echo_roundtrip(sock, msg, timeout=10):
    sock.sendall(msg)
    return recv_exact(sock, len(msg), timeout=timeout) == msg


class H3TestBase(transportlib.TransportTestCase):

    def setUp(self):
        super().setUp()
        self.home = temp_dir(self, "gost-e2e-h3home-")

    # -- processes --------------------------------------------------------------------------------

    def gost(self, *args, name="gost", port=None, udp=None, env=None, cwd=None,
             expect_running=True, wait=True):
        """A gost process (HOME = a temporary directory); waits for the TCP `port` and/or until
        the process owns a UDP socket on `udp`."""
        extra = {"HOME": self.home}
        extra.update(env or {})
        p = start_gost_in(self, *args, cwd=cwd or self.home, env_extra=extra, port=port, name=name,
                          expect_running=expect_running, wait=wait)
        if udp is not None and wait and not udplib.wait_udp_bound(p.proc, udp, START_TIMEOUT):
            rc = p.poll()
            p.expected_exit = True
            self.fail("%s did not bind UDP 127.0.0.1:%d within %.0fs (%s)\n%s"
                      % (name, udp, START_TIMEOUT, describe_rc(rc), p.diagnostics()))
        return p

    def server(self, scheme="h3", query="", udp=None, name="server", target=None, **kw):
        """`-L scheme://127.0.0.1:udp[/target]?query` (a target makes it a forward service)."""
        udp = udp or udplib.free_udp_port()
        url = "%s://127.0.0.1:%d" % (scheme, udp) + ("/" + target if target else "") + \
            ("?" + query if query else "")
        return udp, self.gost("-L", url, name=name, udp=udp, **kw)

    def client(self, scheme, udp, query="", name="client", **kw):
        """A local http proxy whose chain is one `scheme` node at 127.0.0.1:udp."""
        front = free_port()
        url = "%s://127.0.0.1:%d" % (scheme, udp) + ("?" + query if query else "")
        return front, self.gost("-L", "http://127.0.0.1:%d" % front, "-F", url, port=front,
                                name=name, **kw)

    def pair(self, server_scheme, client_scheme=None, server_query="", client_query=""):
        udp, server = self.server(server_scheme, server_query)
        front, client = self.client(client_scheme or server_scheme, udp, client_query)
        return front, udp, server, client

    # -- checks -----------------------------------------------------------------------------------

    def assert_curl_ok(self, front, label, big=False, tunnel_mode=False, timeout=15):
        url = self.origin.url + ("big" if big else "")
        r = curl(url, proxy="http://127.0.0.1:%d" % front, tunnel=tunnel_mode, timeout=timeout)
        want = self.origin.big if big else self.origin.body
        self.assertEqual((r.rc, r.http_code), (0, "200"), "%s: %r" % (label, r))
        self.assertEqual(r.body, want, "%s: body differs (%d bytes)" % (label, len(r.body)))

    def assert_curl_fails(self, front, label, timeout=15):
        before = len(self.origin.requests)
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % front, timeout=timeout)
        self.assertNotEqual(r.http_code, "200", "%s: expected a failure, got %r" % (label, r))
        self.assertEqual(len(self.origin.requests), before, "%s: the origin was reached" % label)

    def restart_and_reconnect(self, front, server, client, kill, restart, label="h3",
                              check_gone=False):
        """Stops `server` (SIGKILL first when `kill`), with `check_gone` checks that a tunnel fails
        cleanly while it is away, calls `restart()` (the same service on the same UDP port), then
        expects a working tunnel through `front` within RESTART_WINDOW."""
        self.assert_curl_ok(front, "%s: before the restart" % label)
        if kill:
            server.proc.kill()
            server.proc.wait(5)
        server.stop()
        if check_gone:  # an error reply, no hang
            r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % front, timeout=20)
            self.assertNotEqual(r.http_code, "200", "a tunnel with the server gone: %r" % (r,))
        start = time.monotonic()
        restart()
        attempts, ok = [], False
        while time.monotonic() - start < RESTART_WINDOW:
            left = RESTART_WINDOW - (time.monotonic() - start)
            r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % front,
                     timeout=max(2, min(12, int(left))))
            attempts.append((round(time.monotonic() - start, 1), r.http_code))
            if r.http_code == "200" and r.body == self.origin.body:
                ok = True
                break
            time.sleep(0.3)
        sys.stderr.write("%s server restart (%s): attempts %r\n"
                         % (label, "SIGKILL" if kill else "SIGTERM", attempts))
        self.assertTrue(ok, "%s: no working tunnel within %.0fs of the restart: %r"
                        % (label, RESTART_WINDOW, attempts))
        self.assertAlive(client)

    def assert_serving(self, front, server, label):
        """The server process is alive and a fresh tunnel through the client works."""
        self.assertAlive(server)
        s = tunnel(self, front, self.echo.addr)
        try:
            msg = os.urandom(3000)
            self.assertTrue(echo_roundtrip(s, msg), "%s: echo through a new tunnel failed" % label)
        finally:
            s.close()


# ------------------------------------------------------------------------------------------------
# our client, our server
# ------------------------------------------------------------------------------------------------

class H3PairTest(H3TestBase):

    def check_seed(self, server_scheme, client_scheme):
        front, _, server, _ = self.pair(server_scheme, client_scheme, PATHS, PATHS)
        label = "-L %s:// -F %s://" % (server_scheme, client_scheme)
        self.assert_curl_ok(front, label)
        self.assert_curl_ok(front, label + " (CONNECT, 1 MiB)", big=True, tunnel_mode=True)
        self.assertAlive(server)

    def test_seed_pair_http3_listener(self):
        """The seed's pair as written: -L http3://… (handler auto + listener http3 = PHT over
        HTTP/3 in our implementation) and -F http3://…"""
        self.check_seed("http3", "http3")

    def test_seed_pair_h3_listener(self):
        """Current GOST's server spelling: -L h3://…"""
        self.check_seed("h3", "http3")

    def test_h3_dialer(self):
        self.check_seed("h3", "h3")

    def check_transport(self, scheme):
        front, _, server, _ = self.pair(scheme)
        self.assert_curl_ok(front, scheme)
        self.both_ways_and_half_close(front, scheme, tunnel)
        self.assertAlive(server)
        # every tunnel went through the server (a client that ignored -F would pass the
        # checks above going direct)
        for target in (self.origin.addr, self.duplex.addr, self.halfsrv.addr):
            self.assert_through(server, target, 1, scheme)

    def test_relay_h3_8MiB_both_ways_and_half_close(self):
        self.check_transport("relay+h3")

    def test_socks5_h3_8MiB_both_ways_and_half_close(self):
        self.check_transport("socks5+h3")

    def test_auto_handler_with_a_socks5_client(self):
        front, _, _, _ = self.pair("h3", "socks5+h3")
        self.assert_curl_ok(front, "-L h3:// -F socks5+h3://")

    def test_100_concurrent_tunnels_over_one_connection_per_worker(self):
        front, udp, server, client = self.pair("relay+h3")
        ok, errors, elapsed = self.run_connect_batch(front, 100)
        self.check_batch(ok, errors, elapsed, 100)
        sys.stderr.write("100 concurrent h3 tunnels in %.2fs\n" % elapsed)
        # the tunnels share pooled QUIC connections (each client connection has its own UDP
        # socket). Every tunnel holds a pull stream and at times a push stream, and the server
        # allows 100 streams (maxStreams default), so a worker with ~50 tunnels may need a second
        # connection, and a third while the credit of its ended authorize streams is still on its
        # way back (see below): at most 3 per worker, never one per tunnel
        n = udplib.udp_socket_count(client.pid)
        sys.stderr.write("client UDP sockets after 100 tunnels: %d (%d workers)\n" % (n, WORKERS))
        self.assertGreaterEqual(n, 1, "the client holds no UDP socket?")
        self.assertLessEqual(n, 3 * WORKERS, "client holds %d UDP sockets for %d workers" % (n, WORKERS))
        # one worker, 40 tunnels (at most 80 streams at once): one connection, or a second one
        # when the server's stream credit for the streams that just ended (the authorize
        # requests) comes back later than the next requests need it (under load: a MAX_STREAMS
        # frame waits for the client's ACK of the response; net/pht_h3 then opens another
        # connection rather than wait) — never one per tunnel
        front1, client1 = self.client("relay+h3", udp, name="client-1worker", env={"GOST_WORKERS": "1"})
        ok, errors, elapsed = self.run_connect_batch(front1, 40)
        self.check_batch(ok, errors, elapsed, 40)
        n1 = udplib.udp_socket_count(client1.pid)
        sys.stderr.write("client UDP sockets after 40 tunnels on one worker: %d\n" % n1)
        self.assertIn(n1, (1, 2), "one worker, 40 tunnels: %d QUIC connections" % n1)
        self.assertAlive(server)

    def test_server_stream_limit_does_not_block_tunnels(self):
        """Server maxStreams=10: 30 simultaneous tunnels (each holding a pull stream) must still all
        work — the client opens more connections when one is full (DESIGN: a full session is
        skipped)."""
        front, _, server, _ = self.pair("relay+h3", server_query="maxStreams=10")
        ok, errors, elapsed = self.run_connect_batch(front, 30)
        self.check_batch(ok, errors, elapsed, 30)
        self.assertAlive(server)

    def test_idle_timeout_and_keepalive(self):
        """Server maxIdleTimeout=2s. With client keep-alives every 500 ms an idle open tunnel
        survives 4 s on the same connection (the same UDP socket: each client QUIC connection
        has its own); without keep-alives the connection dies idle (the client logs it) and the
        next tunnel reconnects at once on a new one."""
        udp, server = self.server("relay+h3", "maxIdleTimeout=2s")
        front_ka, client_ka = self.client("relay+h3", udp, "keepalive=true&ttl=500ms", name="client-ka")
        # -D: the client logs (debug) when a QUIC connection of its closes, and why
        front_nk = free_port()
        client_nk = self.gost("-D", "-L", "http://127.0.0.1:%d" % front_nk,
                              "-F", "relay+h3://127.0.0.1:%d?keepalive=false" % udp,
                              port=front_nk, name="client-noka")
        s = tunnel(self, front_ka, self.echo.addr)
        s2 = tunnel(self, front_nk, self.echo.addr)
        try:
            self.assertTrue(echo_roundtrip(s, b"before"))
            self.assertTrue(echo_roundtrip(s2, b"before"))
        finally:
            s2.close()
        ka_ports = udplib.udp_ports(client_ka.pid)
        nk_ports = udplib.udp_ports(client_nk.pid)
        self.assertEqual(len(ka_ports), 1, "keepalive client: one QUIC connection, %r" % ka_ports)
        self.assertEqual(len(nk_ports), 1, "no-keepalive client: one QUIC connection, %r" % nk_ports)
        try:
            time.sleep(4.0)
            self.assertTrue(echo_roundtrip(s, b"after 4s idle"),
                            "keepalive=true&ttl=500ms: the idle tunnel died")
        finally:
            s.close()
        self.assertEqual(udplib.udp_ports(client_ka.pid), ka_ports,
                         "keepalive=true: the connection was replaced")
        # without keep-alives the idle connection died of its idle timeout (2 s; idle for 4 s by
        # now): the client says so (waited for with a deadline: it notices on its own timer)
        died = "quic 127.0.0.1:%d: closed (Connection timed out)" % udp
        self.assertTrue(gostlib.wait_until(lambda: died in client_nk.stderr_text(), timeout=10),
                        "keepalive=false: the idle connection did not die of its idle timeout\n%s"
                        % client_nk.stderr_text()[-3000:])
        start = time.monotonic()
        s2 = tunnel(self, front_nk, self.echo.addr)
        try:
            self.assertTrue(echo_roundtrip(s2, b"next tunnel"))
        finally:
            s2.close()
        self.assertLess(time.monotonic() - start, 5.0, "the next tunnel took long: a dead "
                        "connection was reused")
        # ... and the next tunnel went over a new connection (a new UDP socket; the dead one's
        # may linger until the pool next looks at it)
        self.assertTrue(set(udplib.udp_ports(client_nk.pid)) - set(nk_ports),
                        "the next tunnel: no new connection: %r (was %r)"
                        % (udplib.udp_ports(client_nk.pid), nk_ports))
        self.assertAlive(server)

    def check_restart(self, kill):
        """The server goes away (SIGTERM: it may say goodbye with CONNECTION_CLOSE; SIGKILL: it
        says nothing) and comes back on the same UDP port while the client runs: the client must
        notice (closing frame, idle timeout, keep-alives) and the next tunnel reconnect."""
        udp, server = self.server("relay+h3")
        cq = "maxIdleTimeout=5s&keepalive=true&ttl=1s"
        front, client = self.client("relay+h3", udp, cq)
        self.restart_and_reconnect(front, server, client, kill,
                                   lambda: self.server("relay+h3", udp=udp, name="server-2"))

    def test_server_restart_client_reconnects(self):
        self.check_restart(kill=False)

    def test_server_killed_and_restarted_client_reconnects(self):
        self.check_restart(kill=True)

    def test_silent_server_is_noticed(self):
        """The server freezes (SIGSTOP: no packets, no ICMP). With maxIdleTimeout=3s and
        keep-alives every second the client must give up on the connection: an open tunnel ends
        within a few seconds instead of hanging; once the server is back the next tunnel works."""
        udp, server = self.server("relay+h3")
        front, client = self.client("relay+h3", udp, "maxIdleTimeout=3s&keepalive=true&ttl=1s")
        s = tunnel(self, front, self.echo.addr)
        self.assertTrue(echo_roundtrip(s, b"before"))
        os.kill(server.pid, signal.SIGSTOP)
        stopped = True
        try:
            data, closed, elapsed = gostlib.recv_until_close(s, timeout=12)
            s.close()
            sys.stderr.write("silent server: the open tunnel ended after %.1fs\n" % elapsed)
            self.assertTrue(closed, "the tunnel still hangs 12 s after the server went silent")
            self.assertLess(elapsed, 8.0, "the tunnel ended only after %.1fs" % elapsed)
            os.kill(server.pid, signal.SIGCONT)
            stopped = False
            self.assert_curl_ok(front, "the first tunnel after the server is back", timeout=10)
        finally:
            if stopped:
                os.kill(server.pid, signal.SIGCONT)
        self.assertAlive(client)

    def test_client_handshake_timeout(self):
        """A node that never answers (a UDP socket that reads and drops): with handshakeTimeout=1s
        the client gives up on the dial after about a second (the default is 5 s)."""
        hole = udplib.udp_client()
        self.addCleanup(hole.close)
        front, client = self.client("relay+h3", hole.getsockname()[1], "handshakeTimeout=1s")
        start = time.monotonic()
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % front, timeout=15)
        took = time.monotonic() - start
        self.assertNotEqual(r.http_code, "200", r)
        self.assertLess(took, 3.5, "the dial gave up after %.1fs, not ~1s" % took)
        # it did try: QUIC v1 Initials, each datagram padded to at least 1200 bytes (RFC 9000 §14.1)
        got = [d for _, d in udplib.recv_all(hole, 0.2)]
        self.assertTrue(got, "the client sent nothing to the node")
        for d in got:
            self.assertEqual((udplib.long_header_type(d), d[1:5]), (0, b"\0\0\0\1"), d[:20].hex())
            self.assertGreaterEqual(len(d), 1200)
        self.assertAlive(client)

    def test_close_is_seen_as_eof_within_a_second_both_ways(self):
        """As test_pht's: the client closes → the target sees EOF; the target closes → the
        client sees EOF, within a second (the median of several tunnels)."""
        rec = self.start_server(test_pht.EofRecorder())
        front, _, _, _ = self.pair("relay+h3")
        test_pht.check_eof_both_ways(self, lambda target: tunnel(self, front, target), rec)

    def test_paths_must_match(self):
        udp, _ = self.server("h3", "pushPath=/up&pullPath=/down")
        front, _ = self.client("http3", udp, name="client-default-paths")
        front2, _ = self.client("http3", udp, "pushPath=/up&pullPath=/down", name="client-same-paths")
        self.assert_curl_fails(front, "client default paths vs server /up /down")
        self.assert_curl_ok(front2, "matching custom paths")


# ------------------------------------------------------------------------------------------------
# loss and reordering
# ------------------------------------------------------------------------------------------------

class H3LossTest(H3TestBase):

    def test_packet_loss_and_reordering(self):
        """3 % of the datagrams dropped and 3 % held back behind the next one, both ways: 8 MiB
        both ways arrive intact, in bounded time."""
        udp, server = self.server("relay+h3")
        relay = self.start_server(udplib.LossyUdpRelay(udp, drop=0.03, reorder=0.03))
        front, _ = self.client("relay+h3", relay.port)
        s = tunnel(self, front, self.duplex.addr)
        try:
            start = time.monotonic()
            self.duplex_exchange(s, "lossy relay")
            elapsed = time.monotonic() - start
        finally:
            s.close()
        st = dict(relay.stats)
        sys.stderr.write("lossy relay (seed %d): 8 MiB both ways in %.1fs; %r\n"
                         % (relay.seed, elapsed, st))
        self.assertLess(elapsed, LOSSY_BOUND)
        self.assertGreater(st["dropped"], 10, st)
        self.assertGreater(st["reordered"], 10, st)
        self.assertAlive(server)


# ------------------------------------------------------------------------------------------------
# hand-made datagrams
# ------------------------------------------------------------------------------------------------

def collect(socks, window):
    """Datagrams arriving on any of socks within window seconds: {sock: [data, ...]}."""
    out = {s: [] for s in socks}
    deadline = time.monotonic() + window
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return out
        r, _, _ = select.select(socks, [], [], left)
        for s in r:
            try:
                d, _ = s.recvfrom(65535)
            except OSError:
                continue
            out[s].append(d)


class H3BadInputTest(H3TestBase):

    def setUp(self):
        super().setUp()
        self.front, self.udp, self.srv, self.cli = self.pair("h3", "http3", PATHS, PATHS)
        self.assert_curl_ok(self.front, "baseline")
        self.addr = ("127.0.0.1", self.udp)

    def sock(self):
        s = udplib.udp_client()
        self.addCleanup(s.close)
        return s

    def test_garbage_datagrams(self):
        s = self.sock()
        sizes = [0, 1, 2, 5, 20, 21, 42, 100, 500, 1199, 1200, 1201, 1350, 1500]
        sent = 0
        probes = [os.urandom(n) for n in sizes for _ in range(3)]
        probes += [b"\0" * 1500, b"\xff" * 1500, b"\xc0" * 1200,
                   # version 1 long headers with impossible connection ID lengths
                   b"\xc3\x00\x00\x00\x01\xff" + os.urandom(1194),
                   b"\xc3\x00\x00\x00\x01\x15" + os.urandom(1194),
                   # truncated headers
                   b"\xc3\x00\x00\x00\x01", b"\xc3\x00\x00\x00\x01\x08abcd",
                   udplib.junk_initial()[:60]]
        for p in probes:
            s.sendto(p, self.addr)
            sent += len(p)
        got = collect([s], 1.5)[s]
        back = sum(len(d) for d in got)
        self.assertLessEqual(back, 3 * sent, "answers to garbage exceed 3x: %d for %d" % (back, sent))
        for d in got:  # only a Version Negotiation or a stateless reset may answer junk
            self.assertIn(udplib.long_header_type(d), ("vn", "short"), d[:40].hex())
        self.assert_serving(self.front, self.srv, "after garbage datagrams")

    def test_version_negotiation(self):
        for version in (0x1A2A3A4A, 0x5A6A7A8A):
            s = self.sock()
            dcid, scid = os.urandom(8), os.urandom(8)
            got = []
            for _ in range(3):  # UDP: a few tries
                s.sendto(udplib.long_header_probe(version, dcid, scid, 1200), self.addr)
                got = collect([s], 1.0)[s]
                if got:
                    break
            self.assertTrue(got, "no Version Negotiation for version %#x" % version)
            vn = udplib.parse_version_negotiation(got[0])
            self.assertIsNotNone(vn, "not a Version Negotiation packet: %s" % got[0][:60].hex())
            self.assertTrue(got[0][0] & 0x80)
            self.assertEqual(vn[0], scid, "VN DCID must echo our SCID (RFC 9000 §17.2.1)")
            self.assertEqual(vn[1], dcid, "VN SCID must echo our DCID (RFC 9000 §17.2.1)")
            self.assertIn(udplib.QUIC_V1, vn[2], [hex(v) for v in vn[2]])
            self.assertNotIn(version, vn[2])
            self.assertLessEqual(len(got[0]), 1200)
        self.assert_serving(self.front, self.srv, "after version negotiation")

    def test_small_unknown_version_and_vn_packets_get_no_answer(self):
        s = self.sock()
        # RFC 9000 §5.2.2: servers MUST drop smaller packets that specify unsupported versions
        for size in (30, 100, 1199):
            s.sendto(udplib.long_header_probe(0x1A2A3A4A, os.urandom(8), os.urandom(8), size),
                     self.addr)
        # RFC 9000 §6.1: never a Version Negotiation packet in reply to one (version 0)
        s.sendto(udplib.long_header_probe(0, os.urandom(8), os.urandom(8), 1200, first=0x80),
                 self.addr)
        got = collect([s], 1.5)[s]
        self.assertEqual([d[:20].hex() for d in got], [])
        self.assert_serving(self.front, self.srv, "after small unknown-version packets")

    def test_junk_initial_flood_from_many_ports(self):
        pid = self.srv.pid
        rss0, fds0 = udplib.rss_kib(pid), udplib.fd_count(pid)
        socks = [self.sock() for _ in range(200)]
        sent = {}
        for round_ in range(10):
            for s in socks:
                p = udplib.junk_initial(size=1200)
                s.sendto(p, self.addr)
                sent[s] = sent.get(s, 0) + len(p)
            time.sleep(0.01)
        got = collect(socks, 1.5)
        for s, ds in got.items():
            # undecryptable Initials are dropped; only a Retry could answer one
            for d in ds:
                self.assertEqual(udplib.long_header_type(d), 3,
                                 "answer to an undecryptable Initial: %s" % d[:40].hex())
            self.assertLessEqual(sum(map(len, ds)), 3 * sent[s])
        time.sleep(1.0)
        self.assert_serving(self.front, self.srv, "after 2000 junk Initials")
        rss1, fds1 = udplib.rss_kib(pid), udplib.fd_count(pid)
        sys.stderr.write("junk Initial flood: RSS %d -> %d KiB, fds %d -> %d\n" % (rss0, rss1, fds0, fds1))
        if not gostlib.under_asan():
            self.assertLess(rss1 - rss0, 50 * 1024, "RSS grew by %d KiB" % (rss1 - rss0))
        self.assertLess(fds1 - fds0, 20, "open descriptors grew from %d to %d" % (fds0, fds1))

    def test_stateless_reset_lookalikes(self):
        # to the server: short-header packets for connections it does not have. It may answer
        # with a stateless reset, which must be smaller than the trigger (RFC 9000 §10.3.3)
        s = self.sock()
        for size in (21, 22, 43, 60, 100, 1200):
            for _ in range(3):
                p = udplib.short_header_packet(size)
                s.sendto(p, self.addr)
                for d in collect([s], 0.3)[s]:
                    self.assertLess(len(d), size, "a %d-byte answer to a %d-byte short packet"
                                    % (len(d), size))
        self.assert_serving(self.front, self.srv, "after stateless-reset look-alikes")

    def test_junk_to_the_client_from_its_peer_address(self):
        """The client's connection gets junk from the address it talks to (a relay in between
        injects it): fake stateless resets (no valid token), garbage, a Version Negotiation
        packet after the handshake (RFC 9000 §6.2: discarded), long-header junk. An open tunnel
        lives on and new tunnels work."""
        relay = self.start_server(udplib.LossyUdpRelay(self.udp, drop=0, reorder=0))
        front, client = self.client("http3", relay.port, PATHS, name="client-via-relay")
        t = tunnel(self, front, self.echo.addr)
        try:
            self.assertTrue(echo_roundtrip(t, b"before"))
            junk = []
            for size in (21, 22, 25, 40, 43, 60, 100, 1200, 1500):
                junk += [udplib.short_header_packet(size) for _ in range(5)]
                junk.append(os.urandom(size))
            junk.append(b"\x80\0\0\0\0\x08" + os.urandom(8) + b"\x08" + os.urandom(8) +
                        b"\x1a\x2a\x3a\x4a")  # Version Negotiation: only an unknown version
            junk += [udplib.junk_initial(), udplib.long_header_probe(1, os.urandom(8), os.urandom(8),
                                                                     1200, first=0xE3)]
            for d in junk:
                self.assertEqual(relay.inject_to_clients(d), 1)
            time.sleep(0.5)
            self.assertTrue(echo_roundtrip(t, b"after junk to the client"),
                            "the open tunnel died after junk to the client")
        finally:
            t.close()
        self.assertAlive(client)
        self.assert_serving(front, self.srv, "after junk to the client")


class H3RealInitialTest(H3TestBase):
    """Decryptable client Initials with a real ClientHello (RFC 9001 §5), made by udplib."""

    def setUp(self):
        super().setUp()
        if not udplib.have_crypto():
            self.skipTest("python3-cryptography is not installed: no real Initials")

    def test_initial_keys_match_rfc9001_a1(self):
        secret, key, iv, hp = udplib.client_initial_keys(bytes.fromhex("8394c8f03e515708"))
        self.assertEqual(key.hex(), "1f369613dd76d5467730efcbe3b1a22d")
        self.assertEqual(iv.hex(), "fa044b2f42a3fd3b46fb255c")
        self.assertEqual(hp.hex(), "9f50449e04a0e810283a1e9933adedd2")

    def test_handshake_start_and_amplification_limit(self):
        """One Initial, never followed up: the server answers (QUIC v1, ALPN h3) with its
        Initial, and before the address is validated sends at most 3x what it received
        (RFC 9000 §8.1), retransmissions included."""
        udp, server = self.server("h3", "handshakeTimeout=3s")
        s = udplib.udp_client()
        self.addCleanup(s.close)
        scid = os.urandom(8)
        p = udplib.real_initial(scid=scid)
        s.sendto(p, ("127.0.0.1", udp))
        got = collect([s], 5.0)[s]
        self.assertTrue(got, "no answer to a real Initial")
        first = got[0]
        # its Initial (or a Retry, if it validates addresses first)
        self.assertIn(udplib.long_header_type(first), (0, 3), first[:40].hex())
        self.assertEqual(first[1:5], b"\0\0\0\1")
        self.assertEqual(first[6:6 + first[5]], scid, "the server's Initial must go to our SCID")
        total = sum(map(len, got))
        self.assertLessEqual(total, 3 * len(p), "%d bytes sent to an unvalidated address for %d "
                             "received (%d datagrams)" % (total, len(p), len(got)))
        self.assertAlive(server)

    def test_real_initial_flood_from_many_ports(self):
        """500 half-open handshakes from 100 source ports: a new client still gets through, and
        memory and descriptors stay bounded."""
        udp, server = self.server("h3", PATHS + "&handshakeTimeout=2s")
        pid = server.pid
        rss0, fds0 = udplib.rss_kib(pid), udplib.fd_count(pid)
        socks = [udplib.udp_client() for _ in range(100)]
        for s in socks:
            self.addCleanup(s.close)
        packets = [[udplib.real_initial() for _ in range(5)] for _ in socks]
        start = time.monotonic()
        for i in range(5):
            for s, ps in zip(socks, packets):
                s.sendto(ps[i], ("127.0.0.1", udp))
        sys.stderr.write("real Initial flood: 500 sent in %.2fs\n" % (time.monotonic() - start))
        got = collect(socks, 0.5)
        answered = sum(1 for ds in got.values() if ds)
        # a new client during the aftermath of the flood
        front, _ = self.client("http3", udp, PATHS)
        self.assert_curl_ok(front, "a new client after 500 real Initials", timeout=20)
        time.sleep(3.0)  # handshakeTimeout=2s: the half-open connections are gone
        for s in socks:  # drain
            collect([s], 0)
        self.assert_curl_ok(front, "again, after the handshake timeout")
        rss1, fds1 = udplib.rss_kib(pid), udplib.fd_count(pid)
        sys.stderr.write("real Initial flood: %d/100 sockets answered; RSS %d -> %d KiB, fds %d -> %d\n"
                         % (answered, rss0, rss1, fds0, fds1))
        self.assertGreater(answered, 0, "no real Initial was answered at all")
        if not gostlib.under_asan():
            self.assertLess(rss1 - rss0, 100 * 1024, "RSS grew by %d KiB" % (rss1 - rss0))
        self.assertLess(fds1 - fds0, 20, "open descriptors grew from %d to %d" % (fds0, fds1))
        self.assertAlive(server)


# ------------------------------------------------------------------------------------------------
# an independent HTTP/3 client: Debian's ngtcp2 example client
# ------------------------------------------------------------------------------------------------

class H3IndependentClientTest(H3TestBase):

    def setUp(self):
        super().setUp()
        if not udplib.have_gtlsclient():
            self.skipTest("gtlsclient (Debian package ngtcp2-client) is not installed")

    def request(self, udp, path, **kw):
        r = udplib.gtls_request(udp, path, **kw)
        self.assertIsNotNone(r.status, "gtlsclient got no response for %s: %r" % (path, r))
        return r

    def test_endpoints(self):
        udp, server = self.server("h3", PATHS)
        r = self.request(udp, "/authorize")
        self.assertEqual(r.status, 200, r)
        self.assertRegex(r.body, re.compile(rb"^token=[0-9a-v]{20}$"), r)
        r = self.request(udp, "/push")  # GET on the push path (no token)
        self.assertEqual(r.status, 400, r)
        r = self.request(udp, "/foo")
        self.assertEqual(r.status, 404, r)
        self.assertEqual(r.body, b"404 page not found\n", r)
        self.assertEqual(r.header("content-type"), "text/plain; charset=utf-8", r)
        r = self.request(udp, "/push/x")  # exact match only
        self.assertEqual(r.status, 404, r)
        r = self.request(udp, "/authorize", method="POST", data=b"")  # any method gets a token
        self.assertEqual(r.status, 200, r)
        self.assertRegex(r.body, re.compile(rb"^token=[0-9a-v]{20}$"), r)
        self.assertAlive(server)

    def test_push_and_pull(self):
        """A session driven by hand (docs/PROTOCOLS.md "pht: push", "pht: sessions", "pht: client"):
        the push creates it (a token never issued), its bytes reach the target (an echo server,
        forward handler), the echo comes back as a base64 line of the pull; an empty push (the
        client's half-close) makes the echo server close, which ends the pull response; a later
        pull of that token → 403."""
        udp, server = self.server("h3", PATHS, target=self.echo.addr)
        token = "gtlsclienttoken01234"
        r = self.request(udp, "/push?token=" + token, method="POST", data=b"aGVsbG8=\n")
        self.assertEqual(r.status, 200, r)
        pull = udplib.GtlsRequest(udp, "/pull?token=" + token, timeout=15)
        self.assertTrue(pull.wait_for(r"^00000000  61 47 56 73", 10), "the pull got no data line")
        # the close: a POST with no body at all (END_STREAM with the HEADERS frame, as
        # quic-go's client sends a request without body)
        closed_at = time.monotonic()
        r = self.request(udp, "/push?token=" + token, method="POST")
        push_took = time.monotonic() - closed_at
        self.assertEqual(r.status, 200, r)
        r = pull.finish()
        ended_after = time.monotonic() - closed_at
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("x-accel-buffering"), "no", r)
        self.assertEqual(r.body, b"aGVsbG8=\n", r)
        self.assertEqual(r.rc, 0, "the pull response did not end after the close: %r" % r)
        # the session ended at the close (the echo server closed at once): the pull response
        # must end then, not at the next heartbeat tick (10 s)
        self.assertLess(push_took, 3.0, "the empty push was answered after %.1fs" % push_took)
        self.assertLess(ended_after, 3.0, "the pull ended %.1fs after the close push" % ended_after)
        r = self.request(udp, "/pull?token=" + token, timeout=3)
        self.assertEqual(r.status, 403, r)
        self.assertAlive(server)


# ------------------------------------------------------------------------------------------------
# TLS options (docs/PROTOCOLS.md "tls")
# ------------------------------------------------------------------------------------------------

class H3TLSTest(H3TestBase):

    def setUp(self):
        super().setUp()
        d = temp_dir(self, "gost-e2e-h3certs-")
        self.d = d
        self.ca, self.ca_key = make_self_signed(d, "ca", "Test CA")
        self.srv_cert, self.srv_key = make_signed(d, "server", "server.test", self.ca, self.ca_key)
        self.cli_cert, self.cli_key = make_signed(d, "client", "client.test", self.ca, self.ca_key)
        self.other_ca, _ = make_self_signed(d, "other", "Other CA")

    def test_server_certificate_and_client_verification(self):
        udp, server = self.server("relay+h3", "certFile=%s&keyFile=%s" % (self.srv_cert, self.srv_key))
        cases = [
            ("secure=true&caFile=%s&serverName=server.test" % self.ca, True),
            ("caFile=%s" % self.ca, True),                         # pinning, name not checked
            ("", True),                                            # default: no verification
            ("secure=true", False),                                # not a public CA
            ("caFile=%s" % self.other_ca, False),                  # pinned to another CA
            ("secure=true&caFile=%s&serverName=wrong.example" % self.ca, False),
        ]
        fronts = [(q, ok, self.client("relay+h3", udp, q, name="client-%d" % i)[0])
                  for i, (q, ok) in enumerate(cases)]
        for q, ok, front in fronts:
            if ok:
                self.assert_curl_ok(front, "client ?%s" % q)
            else:
                self.assert_curl_fails(front, "client ?%s" % q)
        self.assertAlive(server)

    def test_client_certificates_required_with_server_cafile(self):
        udp, server = self.server("relay+h3", "certFile=%s&keyFile=%s&caFile=%s"
                                  % (self.srv_cert, self.srv_key, self.ca))
        front_no, _ = self.client("relay+h3", udp, "", name="client-nocert")
        front_yes, _ = self.client("relay+h3", udp, "certFile=%s&keyFile=%s"
                                   % (self.cli_cert, self.cli_key), name="client-cert")
        self.assert_curl_fails(front_no, "no client certificate")
        self.assert_curl_ok(front_yes, "with a client certificate")
        self.assertAlive(server)

    def test_default_certificate_from_working_directory(self):
        cwd = temp_dir(self, "gost-e2e-h3cwd-")
        cert, key = make_self_signed(cwd, "x", "cwd.test")
        os.rename(cert, os.path.join(cwd, "cert.pem"))
        os.rename(key, os.path.join(cwd, "key.pem"))
        udp, _ = self.server("relay+h3", cwd=cwd)
        front_pin, _ = self.client("relay+h3", udp, "caFile=%s" % os.path.join(cwd, "cert.pem"),
                                   name="client-pinned")
        front_other, _ = self.client("relay+h3", udp, "caFile=%s" % self.ca, name="client-other")
        self.assert_curl_ok(front_pin, "pinned to the cert.pem of the server's directory")
        self.assert_curl_fails(front_other, "pinned to another CA")


# ------------------------------------------------------------------------------------------------
# configuration: YAML, bad values
# ------------------------------------------------------------------------------------------------

YAML_SERVER = """services:
  - name: service-0
    addr: 127.0.0.1:{udp}
    handler:
      type: auto
    listener:
      type: h3
      metadata:
        authorizePath: /auth
        pushPath: /up
        pullPath: /down
        maxStreams: 200
        maxIdleTimeout: 30s
"""

YAML_CLIENT = """services:
  - name: service-0
    addr: 127.0.0.1:{front}
    handler:
      type: http
      chain: chain-0
    listener:
      type: tcp
chains:
  - name: chain-0
    hops:
      - name: hop-0
        nodes:
          - name: node-0
            addr: 127.0.0.1:{udp}
            connector:
              type: http
            dialer:
              type: {dialer}
              metadata:
                pushPath: /up
                pullPath: /down
                keepalive: true
                ttl: 5s
"""


class H3ConfigTest(H3TestBase):

    def test_yaml_both_sides(self):
        udp = udplib.free_udp_port()
        path = self.write_file("server.yaml", YAML_SERVER.format(udp=udp))
        server = self.gost("-C", path, udp=udp, name="server")
        for dialer in ("http3", "h3"):
            front = free_port()
            cpath = self.write_file("client.yaml", YAML_CLIENT.format(front=front, udp=udp, dialer=dialer))
            self.gost("-C", cpath, port=front, name="client-" + dialer)
            self.assert_curl_ok(front, "YAML, dialer " + dialer)
            self.assert_curl_ok(front, "YAML, dialer %s, CONNECT" % dialer, big=True, tunnel_mode=True)
        self.assertAlive(server)
        # the custom authorize path is the server's: asked with gtlsclient, whose absence is a
        # skip (Not Run; a failure in strict mode), not a check silently left out
        if not udplib.have_gtlsclient():
            self.skipTest("gtlsclient (Debian package ngtcp2-client) is not installed: the "
                          "server's authorize path is not checked")
        r = udplib.gtls_request(udp, "/auth")
        self.assertEqual(r.status, 200, r)
        r = udplib.gtls_request(udp, "/authorize")
        self.assertEqual(r.status, 404, r)
        self.assertAlive(server)

    def expect_config_error(self, args, key):
        p = self.gost(*args, name="bad-config", wait=False, expect_running=False)
        rc = p.wait_exit(10)
        if rc is None:
            self.fail("gost %r still running after 10s (a bad %s must stop start-up)\n%s"
                      % (args, key, p.diagnostics()))
        err = p.stderr_text() + p.stdout_text()
        self.assertFalse(rc < 0, "died by a signal: %s\n%s" % (describe_rc(rc), err))
        self.assertNotEqual(rc, 0, "exit status 0 for a bad %s\n%s" % (key, err))
        self.assertIn(key.lower(), err.lower(), "the error must name the key %s" % key)

    def test_bad_option_values(self):
        udp = udplib.free_udp_port()
        cases = [
            (["-L", "h3://127.0.0.1:%d?maxStreams=abc" % udp], "maxStreams"),
            (["-L", "h3://127.0.0.1:%d?maxIdleTimeout=soon" % udp], "maxIdleTimeout"),
            (["-L", "http://127.0.0.1:%d" % free_port(),
              "-F", "http3://127.0.0.1:%d?handshakeTimeout=xyz" % udp], "handshakeTimeout"),
        ]
        for args, key in cases:
            with self.subTest(key=key):
                self.expect_config_error(args, key)


if __name__ == "__main__":
    gostlib.main()

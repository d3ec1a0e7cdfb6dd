#!/usr/bin/env python3
"""Reverse tunnels: listeners/handlers rtcp and rudp (docs/PROTOCOLS.md "rtcp and rudp").

A service "behind NAT" (an echo server, a web server, a UDP echo) is published through a public
gost server (`-L relay+<transport>://:S?bind=true`, our relay BIND / SOCKS5 MBIND server side) by a
client `-L rtcp://:PUB/127.0.0.1:<service> -F relay+<transport>://127.0.0.1:S`: connections to
127.0.0.1:PUB on the server reach the service. Over ws, wss, grpc, h2c and one h3 run: an echo,
8 MiB both ways with checksums, 100 concurrent inbound connections, curl through the public port;
the socks5 connector form (MBIND); rudp with a DNS-like request/response; the server killed and
restarted while the client runs (the public port answers again within a few seconds); an
unreachable server (logged, retried with back-off, never fatal); a busy public port (logged,
retried, served once free); -O yaml; a missing chain refused at start-up.

Usage: test_rtcp.py <path-to-gost>
"""

import os
import signal
import socket
import struct
import threading
import time

import gostlib
import udplib
from gostlib import (SMUX_FIN, SMUX_PSH, SMUX_SYN, DuplexServer, Smux, EchoServer, OriginServer, UdpEchoServer, curl, free_port,
                     recv_exact, run_gost, start_gost_in, temp_dir, wait_port, wait_until)

MIB = 1 << 20
# The client's back-off is 1, 2, 4, 5, 5 ... s: a server back within a second or two is bound
# again at the next attempt.
REBIND_WINDOW = 12.0
echo_once = gostlib.echo_once
answers = gostlib.echo_answers
dns_query = gostlib.dns_query


def udp_exchange(port, payload, timeout=1.0):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(timeout)
        u.sendto(payload, ("127.0.0.1", port))
        try:
            data, _ = u.recvfrom(65536)
            return data
        except OSError:
            return None


class RtcpBase(gostlib.GostTestCase):

    def setUp(self):
        self.home = temp_dir(self, "gost-e2e-rtcp-home-")
        self.echo = self.start_server(EchoServer())

    def gost(self, *args, name="gost", port=None, expect_running=True):
        return start_gost_in(self, *args, cwd=self.home, env_extra={"HOME": self.home}, port=port,
                             name=name, expect_running=expect_running)

    def server(self, scheme, port=None, query="bind=true", name="server"):
        """The public server: `-L <scheme>://127.0.0.1:S?bind=true` (waits until it listens)."""
        port = port or (udplib.free_udp_port() if scheme.endswith("h3") else free_port())
        url = "%s://127.0.0.1:%d?%s" % (scheme, port, query)
        if scheme.endswith("h3"):
            p = self.gost("-L", url, name=name)
            if not udplib.wait_udp_bound(p.proc, port, 10.0):
                self.fail("%s did not bind UDP %d\n%s" % (name, port, p.diagnostics()))
        else:
            p = self.gost("-L", url, name=name, port=port)
        return port, p

    def client(self, listen, target, chain, name="client", wait=True):
        """`-L <listen>/<target> -F <chain>`; waits until the public port (on the server) accepts
        when it is a TCP one."""
        p = self.gost("-L", "%s/%s" % (listen, target), "-F", chain, name=name)
        if wait and listen.startswith("rtcp://"):
            pub = int(listen.rsplit(":", 1)[1])
            if not wait_port(pub, 15.0, proc=p.proc):
                self.fail("public port %d did not come up\n%s" % (pub, p.diagnostics()))
        return p

    def publish(self, scheme, server_query="bind=true", client_query="", target=None):
        """Server + client publishing `target` (default: the echo server) on a public port."""
        srv, server = self.server(scheme, query=server_query)
        pub = free_port()
        chain = "%s://127.0.0.1:%d" % (scheme, srv) + ("?" + client_query if client_query else "")
        client = self.client("rtcp://:%d" % pub, target or self.echo.addr, chain)
        return pub, srv, server, client

    # -- checks ------------------------------------------------------------------------------------

    def run_duplex(self, pub, duplex, size):
        gostlib.run_duplex(self, pub, duplex, size)

    def check_concurrent(self, pub, n=100):
        gostlib.check_concurrent_echo(self, pub, n)

    def check_rudp(self, scheme):
        uecho = UdpEchoServer()
        self.addCleanup(uecho.close)
        srv, server = self.server(scheme)
        pub = udplib.free_udp_port()
        client = self.client("rudp://:%d" % pub, "127.0.0.1:%d" % uecho.port,
                             "%s://127.0.0.1:%d" % (scheme, srv), wait=False)
        q = dns_query(0x1234)
        reply = None
        deadline = time.monotonic() + 15
        while reply is None and time.monotonic() < deadline:
            reply = udp_exchange(pub, q, timeout=0.5)
        self.assertEqual(reply, b"echo:" + q, client.diagnostics())
        # Several peers at once, each gets its own answers (one flow per peer address).
        socks = []
        try:
            for i in range(10):
                u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                u.settimeout(5)
                socks.append(u)
            for i, u in enumerate(socks):
                for k in range(3):
                    u.sendto(dns_query(i * 16 + k), ("127.0.0.1", pub))
            for i, u in enumerate(socks):
                got = sorted(u.recvfrom(65536)[0] for _ in range(3))
                self.assertEqual(got, sorted(b"echo:" + dns_query(i * 16 + k) for k in range(3)))
        finally:
            for u in socks:
                u.close()
        self.assertAlive(client)
        self.assertAlive(server)


class RtcpTransportTest(RtcpBase):
    """relay BIND over each data channel: echo, 8 MiB both ways, 100 concurrent, curl."""

    TRANSPORTS = [
        ("relay+ws", "", ""),
        ("relay+wss", "", ""),
        ("relay+grpc", "grpcInsecure=true", "grpcInsecure=true"),
        ("relay+h2c", "", ""),
    ]

    def check_transport(self, scheme, server_query, client_query):
        sq = "bind=true" + ("&" + server_query if server_query else "")
        pub, srv_port, server, client = self.publish(scheme, sq, client_query)
        self.assertTrue(answers(pub, b"hello through " + scheme.encode()))
        self.check_concurrent(pub, 100)
        duplex = self.start_server(DuplexServer(8 * MIB))
        pub2 = free_port()
        chain = "%s://127.0.0.1:%d" % (scheme, srv_port) + ("?" + client_query if client_query else "")
        self.client("rtcp://:%d" % pub2, duplex.addr, chain, name="client-duplex")
        self.run_duplex(pub2, duplex, 8 * MIB)
        origin = self.start_server(OriginServer())
        pub3 = free_port()
        self.client("rtcp://:%d" % pub3, origin.addr, chain, name="client-web")
        r = curl("http://127.0.0.1:%d/" % pub3)
        self.assertEqual((r.rc, r.http_code, r.body), (0, "200", OriginServer.BODY), r)
        r = curl("http://127.0.0.1:%d/big" % pub3, timeout=20)
        self.assertEqual((r.rc, r.http_code), (0, "200"), r)
        self.assertEqual(r.body, origin.big)
        self.assertAlive(server)
        self.assertAlive(client)

    def test_ws(self):
        self.check_transport(*self.TRANSPORTS[0])

    def test_wss(self):
        self.check_transport(*self.TRANSPORTS[1])

    def test_grpc(self):
        self.check_transport(*self.TRANSPORTS[2])

    def test_h2c(self):
        self.check_transport(*self.TRANSPORTS[3])

    def test_h3(self):
        """One run over HTTP/3 (QUIC): echo, 100 concurrent, 8 MiB both ways."""
        pub, srv_port, server, client = self.publish("relay+h3")
        self.assertTrue(answers(pub))
        self.check_concurrent(pub, 100)
        duplex = self.start_server(DuplexServer(8 * MIB))
        pub2 = free_port()
        self.client("rtcp://:%d" % pub2, duplex.addr, "relay+h3://127.0.0.1:%d" % srv_port,
                    name="client-duplex")
        self.run_duplex(pub2, duplex, 8 * MIB)

    def test_other_channels(self):
        """mws, mwss, h2 (HTTP/2 over TLS) and pht carry the binding too: an echo and 20
        concurrent."""
        for scheme in ("relay+mws", "relay+mwss", "relay+h2", "relay+pht"):
            with self.subTest(scheme=scheme):
                pub, srv_port, server, client = self.publish(scheme)
                self.assertTrue(answers(pub, scheme.encode()))
                self.check_concurrent(pub, 20)

    def test_two_hops(self):
        """-F relay+ws://A -F relay://B: the BIND goes to B through A; B's port is the public one."""
        a, server_a = self.server("relay+ws", query="bind=false", name="hop-a")
        b, server_b = self.server("relay", name="hop-b")
        pub = free_port()
        client = self.gost("-L", "rtcp://:%d/%s" % (pub, self.echo.addr),
                           "-F", "relay+ws://127.0.0.1:%d" % a, "-F", "relay://127.0.0.1:%d" % b,
                           name="client")
        self.assertTrue(wait_port(pub, 15.0, proc=client.proc), client.diagnostics())
        self.assertTrue(answers(pub, b"two hops"))
        self.assertIn("(tcp bind)", server_b.stderr_text())
        self.assertNotIn("(tcp bind)", server_a.stderr_text())

    def test_peer_address_logged(self):
        """The client's log names the inbound peer (the per-stream header's address) and the
        bound address; the relay request on the wire is GOST's BIND (server log: tcp bind)."""
        pub, srv_port, server, client = self.publish("relay+ws")
        with socket.create_connection(("127.0.0.1", pub), timeout=5) as s:
            local = s.getsockname()
            s.sendall(b"x")
            self.assertEqual(recv_exact(s, 1), b"x")
        peer = "127.0.0.1:%d" % local[1]
        self.assertTrue(wait_until(lambda: peer in client.stderr_text(), 5.0),
                        client.stderr_text()[-3000:])
        self.assertIn("bind on [::]:%d/tcp OK" % pub, client.stderr_text())
        self.assertIn("(tcp bind)", server.stderr_text())


class RtcpSocks5Test(RtcpBase):

    def test_socks5_mbind(self):
        """-F socks5+ws://: rtcp asks for MBIND; curl and an echo through the public port."""
        pub, srv_port, server, client = self.publish("socks5+ws")
        self.assertTrue(answers(pub))
        self.check_concurrent(pub, 20)
        origin = self.start_server(OriginServer())
        pub2 = free_port()
        self.client("rtcp://:%d" % pub2, origin.addr, "socks5+ws://127.0.0.1:%d" % srv_port,
                    name="client-web")
        r = curl("http://127.0.0.1:%d/" % pub2)
        self.assertEqual((r.rc, r.http_code, r.body), (0, "200", OriginServer.BODY), r)

    def test_socks5_rudp(self):
        """-L rudp -F socks5+ws://: UDP-TUN bind; DNS-like request/response."""
        self.check_rudp("socks5+ws")

class RudpTest(RtcpBase):

    def test_relay_rudp(self):
        """-L rudp://:P/127.0.0.1:dns -F relay+ws://: a DNS-like request/response."""
        self.check_rudp("relay+ws")


class RtcpRecoveryTest(RtcpBase):

    def test_server_restart(self):
        """The server is killed while the client runs: the public port goes away, and once a new
        server listens on the same address the binding is re-established and the port answers
        again within a few seconds, without restarting the client."""
        srv, server = self.server("relay+ws")
        pub = free_port()
        client = self.client("rtcp://:%d" % pub, self.echo.addr, "relay+ws://127.0.0.1:%d" % srv)
        self.assertTrue(answers(pub))
        server.proc.kill()
        server.proc.wait(10)
        server.expected_exit = True
        self.assertTrue(wait_until(lambda: not answers(pub), 5.0), "public port still answers")
        time.sleep(1.5)  # at least one failed rebind attempt
        self.server("relay+ws", port=srv, name="server-2")
        start = time.monotonic()
        self.assertTrue(wait_until(lambda: answers(pub), REBIND_WINDOW, interval=0.1),
                        "the public port did not come back\n" + client.diagnostics())
        took = time.monotonic() - start
        self.assertLess(took, REBIND_WINDOW)
        self.check_concurrent(pub, 20)
        err = client.stderr_text()
        self.assertIn("retrying in 1s", err)
        self.assertAlive(client)

    def test_unreachable_server(self):
        """Nothing listens at the chain's node: the client logs each failure and retries with
        back-off (1, 2, 4 s ...), keeps running, and binds once the server appears."""
        srv = free_port()
        pub = free_port()
        client = self.client("rtcp://:%d" % pub, self.echo.addr, "relay+ws://127.0.0.1:%d" % srv,
                             wait=False)
        self.assertTrue(wait_until(lambda: "retrying in 2s" in client.stderr_text(), 10.0),
                        client.diagnostics())
        err = client.stderr_text()
        self.assertIn("retrying in 1s", err)
        self.assertIn("route(retry=0)", err)
        self.assertAlive(client)
        self.server("relay+ws", port=srv)
        self.assertTrue(wait_until(lambda: answers(pub), REBIND_WINDOW, interval=0.2),
                        client.diagnostics())

    def test_bad_server(self):
        """The node is not a relay server (it answers garbage, or closes): logged and retried,
        never a crash."""
        junk = socket.socket()
        junk.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        junk.bind(("127.0.0.1", 0))
        junk.listen(16)
        self.addCleanup(junk.close)
        stop = threading.Event()

        def serve():
            junk.settimeout(0.2)
            while not stop.is_set():
                try:
                    c, _ = junk.accept()
                except OSError:
                    continue
                try:
                    c.recv(4096)
                    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                              b"Connection: Upgrade\r\n\r\n" + os.urandom(64))
                except OSError:
                    pass
                c.close()

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        self.addCleanup(stop.set)
        pub = free_port()
        client = self.client("rtcp://:%d" % pub, self.echo.addr,
                             "relay+ws://127.0.0.1:%d" % junk.getsockname()[1], wait=False)
        self.assertTrue(wait_until(lambda: "retrying in 2s" in client.stderr_text(), 10.0),
                        client.diagnostics())
        self.assertAlive(client)

    def test_busy_public_port(self):
        """The public address is taken on the server: the BIND is refused (Service Unavailable),
        the client logs it and retries; once the port is free the binding comes up."""
        srv, server = self.server("relay+ws")
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        pub = blocker.getsockname()[1]
        client = self.client("rtcp://127.0.0.1:%d" % pub, self.echo.addr,
                             "relay+ws://127.0.0.1:%d" % srv, wait=False)
        self.assertTrue(wait_until(lambda: "retrying in 1s" in client.stderr_text(), 10.0),
                        client.diagnostics())
        self.assertIn("bind on 127.0.0.1:%d/tcp failed" % pub, client.stderr_text())
        blocker.close()
        self.assertTrue(wait_until(lambda: answers(pub), REBIND_WINDOW, interval=0.2),
                        client.diagnostics() + server.diagnostics())
        self.assertAlive(client)


class FreezingProxy:
    """127.0.0.1:port → 127.0.0.1:target; freeze() stops moving the bytes of the connections it
    carries (the link goes silent, no FIN, no RST) while new connections still pass."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.generation = 0
        self.stop = False
        self.socks = []
        threading.Thread(target=self.loop, daemon=True).start()

    def freeze(self):
        self.generation += 1

    def loop(self):
        while not self.stop:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                continue
            try:
                u = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                c.close()
                continue
            self.socks += [c, u]
            gen = self.generation
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self.pump, args=(a, b, gen), daemon=True).start()

    def pump(self, src, dst, gen):
        src.settimeout(0.2)
        while not self.stop:
            if gen != self.generation:  # frozen: hold the sockets, move nothing
                time.sleep(0.2)
                continue
            try:
                d = src.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not d:
                return
            try:
                dst.sendall(d)
            except OSError:
                return

    def close(self):
        self.stop = True
        self.lsock.close()
        for x in self.socks:
            x.close()


class RtcpSilentLinkTest(RtcpBase):

    def test_silent_link(self):
        """The link goes silent (no FIN, no RST): the smux keep-alive timeout ends the session on
        both sides (here mux.keepaliveTimeout=3s), the server releases the public port and the
        client binds again through a new connection; the port answers again."""
        mux = "mux.keepaliveInterval=1s&mux.keepaliveTimeout=3s"
        srv, server = self.server("relay", query="bind=true&" + mux)
        proxy = FreezingProxy(srv)
        self.addCleanup(proxy.close)
        pub = free_port()
        client = self.client("rtcp://:%d" % pub, self.echo.addr,
                             "relay://127.0.0.1:%d?%s" % (proxy.port, mux))
        self.assertTrue(answers(pub, b"before"))
        proxy.freeze()
        self.assertTrue(wait_until(lambda: not answers(pub), 6.0), "the port still answers")
        self.assertTrue(wait_until(lambda: answers(pub, b"after"), 20.0, interval=0.3),
                        client.diagnostics() + server.diagnostics())
        self.assertIn("retrying in", client.stderr_text())
        self.assertAlive(client)


class FakeNode:
    """A scripted node on 127.0.0.1: accepts one connection at a time and hands it to `script`."""

    def __init__(self, script):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.script = script
        self.errors = []
        self.done = threading.Event()
        self.stop = False
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            c.settimeout(10)
            try:
                self.script(c)
                self.done.set()
            except Exception as e:  # noqa: BLE001 - reported by the test
                self.errors.append(repr(e))
            finally:
                c.close()

    def close(self):
        self.stop = True
        self.sock.close()


class RtcpWireTest(RtcpBase):
    """The client's bytes against scripted nodes (docs/PROTOCOLS.md "rtcp and rudp"): GOST 3.2.6's
    BIND request, the smux session served from our side, the per-stream header."""

    def run_node(self, node_scheme, listen, expected_request, reply, stream_header):
        seen = {}

        def script(c):
            if node_scheme == "socks5":
                seen["greeting"] = recv_exact(c, 4)
                c.sendall(b"\x05\x00")
            req = recv_exact(c, len(expected_request))
            seen["request"] = req
            c.sendall(reply)
            mux = Smux(c)
            mux.send(SMUX_SYN, 3)
            mux.send(SMUX_PSH, 3, stream_header + b"ping")
            mux.pump_until(lambda: mux.data.get(3, b"").startswith(b"ping"), 10)
            seen["echo"] = mux.data[3]
            mux.send(SMUX_FIN, 3)
            mux.pump_until(lambda: 3 in mux.fin, 10)

        node = FakeNode(script)
        self.addCleanup(node.close)
        client = self.client(listen, self.echo.addr, "%s://127.0.0.1:%d" % (node_scheme, node.port),
                             wait=False)
        self.assertTrue(node.done.wait(15), "%r %r\n%s" % (node.errors, seen, client.diagnostics()))
        self.assertEqual(seen["request"], expected_request)
        self.assertEqual(seen["echo"], b"ping")
        self.assertTrue(wait_until(lambda: "203.0.113.5:51000" in client.stderr_text(), 5.0),
                        client.diagnostics())
        return seen

    def test_relay_bind_bytes(self):
        # rtcp://:2227 → `01 02 00 0c 04 00 02 00 00 02 00 04 03 00 08 b3` (GOST 3.2.6: the empty
        # host as a zero-length domain); the response names the bound address; each stream
        # starts with `01 00 00 0a 02 00 07 01 <peer ip> <peer port>`.
        pub = free_port()
        req = bytes([1, 2, 0, 0x0c, 4, 0, 2, 0, 0, 2, 0, 4, 3, 0]) + struct.pack(">H", pub)
        reply = bytes([1, 0, 0, 0x0a, 2, 0, 7, 1, 127, 0, 0, 1]) + struct.pack(">H", pub)
        header = bytes([1, 0, 0, 0x0a, 2, 0, 7, 1, 203, 0, 113, 5]) + struct.pack(">H", 51000)
        self.run_node("relay", "rtcp://:%d" % pub, req, reply, header)

    def test_relay_bind_ipv4_bytes(self):
        # rtcp://0.0.0.0:p → example M of docs/PROTOCOLS.md: `01 02 00 0f 04 00 02 00 00 02 00 07
        # 01 00 00 00 00 <port>`.
        pub = free_port()
        req = bytes([1, 2, 0, 0x0f, 4, 0, 2, 0, 0, 2, 0, 7, 1, 0, 0, 0, 0]) + struct.pack(">H", pub)
        reply = bytes([1, 0, 0, 0]) + b""
        header = bytes([1, 0, 0, 0x0a, 2, 0, 7, 1, 203, 0, 113, 5]) + struct.pack(">H", 51000)
        self.run_node("relay", "rtcp://0.0.0.0:%d" % pub, req, reply, header)

    def test_socks5_mbind_bytes(self):
        # `05 f2 00 01 00 00 00 00 <port>`, reply `05 00 00 01 ...`, each stream starts with a
        # `05 00 00 01 <peer>` reply.
        pub = free_port()
        req = bytes([5, 0xF2, 0, 1, 0, 0, 0, 0]) + struct.pack(">H", pub)
        reply = bytes([5, 0, 0, 1, 127, 0, 0, 1]) + struct.pack(">H", pub)
        header = bytes([5, 0, 0, 1, 203, 0, 113, 5]) + struct.pack(">H", 51000)
        seen = self.run_node("socks5", "rtcp://0.0.0.0:%d" % pub, req, reply, header)
        self.assertEqual(seen["greeting"], b"\x05\x02\x00\x80")

    def test_socks5_mbind_empty_host_bytes(self):
        # rtcp://:p over socks5: gosocks5 sends the empty host as a zero-length domain
        # `05 f2 00 03 00 <port>`; our server binds it as the wildcard (test_socks5_mbind).
        pub = free_port()
        req = bytes([5, 0xF2, 0, 3, 0]) + struct.pack(">H", pub)
        reply = bytes([5, 0, 0, 1, 0, 0, 0, 0]) + struct.pack(">H", pub)
        header = bytes([5, 0, 0, 1, 203, 0, 113, 5]) + struct.pack(">H", 51000)
        self.run_node("socks5", "rtcp://:%d" % pub, req, reply, header)

    def test_bad_stream_header_drops_the_stream_only(self):
        """A stream whose header is not a relay response is dropped; the session serves on."""
        pub = free_port()
        req = bytes([1, 2, 0, 0x0f, 4, 0, 2, 0, 0, 2, 0, 7, 1, 0, 0, 0, 0]) + struct.pack(">H", pub)
        seen = {}

        def script(c):
            recv_exact(c, len(req))
            c.sendall(bytes([1, 0, 0, 0]))
            mux = Smux(c)
            mux.send(SMUX_SYN, 3)
            mux.send(SMUX_PSH, 3, b"\x02garbage-not-a-relay-response")
            mux.pump_until(lambda: 3 in mux.fin, 10)
            header = bytes([1, 0, 0, 0x0a, 2, 0, 7, 1, 203, 0, 113, 5]) + struct.pack(">H", 51000)
            mux.send(SMUX_SYN, 5)
            mux.send(SMUX_PSH, 5, header + b"second")
            mux.pump_until(lambda: mux.data.get(5, b"") == b"second", 10)
            seen["ok"] = True

        node = FakeNode(script)
        self.addCleanup(node.close)
        client = self.client("rtcp://0.0.0.0:%d" % pub, self.echo.addr,
                             "relay://127.0.0.1:%d" % node.port, wait=False)
        self.assertTrue(node.done.wait(15), "%r\n%s" % (node.errors, client.diagnostics()))
        self.assertTrue(seen.get("ok"))
        self.assertIn("get peer failed", client.stderr_text())
        self.assertAlive(client)


    def test_garbage_session_rebinds(self):
        """After a good BIND reply the node sends bytes that are no smux frames (a bad version, a
        huge length): the session ends, the client logs it, backs off and binds again; it never
        crashes."""
        pub = free_port()
        req = bytes([1, 2, 0, 0x0f, 4, 0, 2, 0, 0, 2, 0, 7, 1, 0, 0, 0, 0]) + struct.pack(">H", pub)
        count = []

        def script(c):
            recv_exact(c, len(req))
            c.sendall(bytes([1, 0, 0, 0]))
            junk = [b"\x07\x00\x00\x00\x03\x00\x00\x00", b"\x01\x02\xff\xff\x03\x00\x00\x00",
                    os.urandom(4096)]
            c.sendall(junk[len(count) % len(junk)])
            count.append(1)
            time.sleep(0.2)

        node = FakeNode(script)
        self.addCleanup(node.close)
        client = self.client("rtcp://0.0.0.0:%d" % pub, self.echo.addr,
                             "relay://127.0.0.1:%d" % node.port, wait=False)
        self.assertTrue(wait_until(lambda: len(count) >= 3, 15.0),
                        "%r\n%s" % (node.errors, client.diagnostics()))
        self.assertIn("retrying in", client.stderr_text())
        self.assertAlive(client)


class RtcpConfigTest(RtcpBase):

    def test_output_yaml(self):
        """-O yaml: the chain is the listener's (GOST's cmd), the path the forwarder's target."""
        cp = run_gost(["-L", "rtcp://:2222/127.0.0.1:22", "-F", "relay+ws://server:8443", "-O",
                       "yaml"])
        out = cp.stdout.decode()
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertIn("    handler:\n      type: rtcp\n    listener:\n      type: rtcp\n"
                      "      chain: chain-0\n    forwarder:\n      nodes:\n        - name: target-0\n"
                      "          addr: 127.0.0.1:22\n", out)
        self.assertNotIn("handler:\n      type: rtcp\n      chain", out)

    def test_yaml_config(self):
        """The YAML form: listener rtcp with its chain, handler rtcp with a forwarder node."""
        srv, server = self.server("relay+ws")
        pub = free_port()
        path = self.write_file("rtcp.yaml", """
services:
- name: publish
  addr: :%d
  handler:
    type: rtcp
  listener:
    type: rtcp
    chain: up
  forwarder:
    nodes:
    - name: ssh
      addr: %s
chains:
- name: up
  hops:
  - name: hop-0
    nodes:
    - name: server
      addr: 127.0.0.1:%d
      connector:
        type: relay
      dialer:
        type: ws
""" % (pub, self.echo.addr, srv))
        p = self.gost("-C", path, name="client-yaml")
        self.assertTrue(wait_port(pub, 15.0, proc=p.proc), p.diagnostics())
        self.assertTrue(answers(pub, b"yaml"))

    def test_reload_changes_the_target(self):
        """SIGHUP with a new target for the rtcp service: the old binding is released and the new
        one bound (one back-off step at most while the server lets go of the port); the public
        port then reaches the new target."""
        srv, server = self.server("relay+ws")
        pub = free_port()
        other = self.start_server(OriginServer())
        template = """
services:
- name: publish
  addr: :%d
  handler: {type: rtcp}
  listener: {type: rtcp, chain: up}
  forwarder:
    nodes: [{name: t, addr: %s}]
chains:
- name: up
  hops:
  - name: hop-0
    nodes: [{name: server, addr: 127.0.0.1:%d, connector: {type: relay}, dialer: {type: ws}}]
"""
        path = self.write_file("rtcp.yaml", template % (pub, self.echo.addr, srv))
        p = self.gost("-C", path, name="client-yaml")
        self.assertTrue(wait_port(pub, 15.0, proc=p.proc), p.diagnostics())
        self.assertTrue(answers(pub, b"before"))
        with open(path, "w") as f:
            f.write(template % (pub, other.addr, srv))
        p.proc.send_signal(signal.SIGHUP)

        def reaches_origin():
            r = curl("http://127.0.0.1:%d/" % pub, timeout=3)
            return r.rc == 0 and r.body == OriginServer.BODY

        self.assertTrue(wait_until(reaches_origin, REBIND_WINDOW, interval=0.3),
                        p.diagnostics() + server.diagnostics())
        self.assertAlive(p)

    def test_missing_chain_refused(self):
        cp = run_gost(["-L", "rtcp://:2222/127.0.0.1:22"], timeout=10)
        self.assertNotEqual(cp.returncode, 0)
        self.assertIn("needs a chain", cp.stderr.decode() + cp.stdout.decode())

    def test_relay_tunnel_id_must_be_uuid(self):
        """The relay connector's tunnel.id (GOST's tunnel visitor form, test_tunnel.py) must be a
        UUID: anything else is refused at start-up, naming it."""
        port = free_port()
        cp = run_gost(["-L", "rtcp://:%d/127.0.0.1:22" % port, "-F",
                       "relay+ws://127.0.0.1:1?tunnel.id=not-a-uuid"], timeout=10)
        self.assertNotEqual(cp.returncode, 0)
        self.assertIn("tunnel.id", cp.stderr.decode() + cp.stdout.decode())

    def test_connector_without_bind_refused_at_bind(self):
        """An http node cannot BIND: each attempt fails with a clear line, the client runs on."""
        front = free_port()
        self.gost("-L", "http://127.0.0.1:%d" % front, name="http-node", port=front)
        pub = free_port()
        client = self.client("rtcp://:%d" % pub, self.echo.addr, "http://127.0.0.1:%d" % front,
                             wait=False)
        self.assertTrue(wait_until(lambda: "does not support BIND" in client.stderr_text(), 10.0),
                        client.diagnostics())
        self.assertAlive(client)


if __name__ == "__main__":
    gostlib.main()

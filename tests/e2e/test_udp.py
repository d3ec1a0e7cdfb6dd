#!/usr/bin/env python3
"""UDP port forwarding: listener and handler `udp` (docs/PROTOCOLS.md "udp: port forwarding").

`gost -L udp://127.0.0.1:U/127.0.0.1:<udp echo>` directly and through chains that carry datagrams
(relay over tcp and ws, socks5 UDP-TUN, relay over h3): DNS-like request/response, 1,000 datagrams
from one peer (every answer counted), random payloads up to 1,400 bytes compared byte for byte,
20 peers at once each getting its own answers. GOST's flow semantics: without `keepAlive` a
peer's flow ends after its first answer (a second answer of the target is not delivered, the next
request opens a new flow), with `keepAlive=true` it lives until `ttl` passes without traffic.
Bad input: empty and oversized datagrams (truncated to readBufferSize), a target that does not
listen, a service without a target refused at start-up. `-O yaml` names listener and handler udp.

Usage: test_udp.py <path-to-gost>
"""

import os
import signal
import socket
import threading
import time

import gostlib
import udplib
from gostlib import UdpEchoServer, free_port, run_gost

dns_query = gostlib.dns_query


def twice_echo():
    """Answers every datagram twice: b"echo:" + data, then b"again:" + data."""
    return UdpEchoServer(answers=lambda data: [b"echo:" + data, b"again:" + data])


def client_socket(timeout=2.0):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    u.settimeout(timeout)
    return u


def drain(u, window=0.5):
    """Every datagram that arrives on `u` within `window` seconds."""
    got = []
    u.settimeout(window)
    try:
        while True:
            got.append(u.recvfrom(65536)[0])
    except OSError:
        pass
    return got


class UdpForwardTest(gostlib.GostTestCase):

    def setUp(self):
        self.echo = UdpEchoServer()
        self.addCleanup(self.echo.close)

    def forward(self, query="", target=None, chain=(), name="gost"):
        """`gost -L udp://127.0.0.1:U/<target>[?query] [-F ...]`, bound before it returns."""
        port = udplib.free_udp_port()
        url = "udp://127.0.0.1:%d/%s" % (port, target or "127.0.0.1:%d" % self.echo.port)
        if query:
            url += "?" + query
        args = ["-L", url]
        for c in chain:
            args += ["-F", c]
        p = self.start_gost(*args, name=name)
        self.assertTrue(udplib.wait_udp_bound(p.proc, port, 10.0), p.diagnostics())
        return port, p

    def server(self, scheme, query=""):
        """A chain node: `-L <scheme>://127.0.0.1:S[?query]`; returns its -F URL."""
        if scheme.endswith("h3"):
            port = udplib.free_udp_port()
            p = self.start_gost("-L", "%s://127.0.0.1:%d%s" % (scheme, port, "?" + query if query else ""),
                                name="server")
            self.assertTrue(udplib.wait_udp_bound(p.proc, port, 10.0), p.diagnostics())
        else:
            port = free_port()
            self.start_gost("-L", "%s://127.0.0.1:%d%s" % (scheme, port, "?" + query if query else ""),
                            port=port, name="server")
        return "%s://127.0.0.1:%d" % (scheme, port)

    def exchange_many(self, port, n, proc, sizes=(12,)):
        """n requests from one peer, one at a time, random payloads: every answer must be the
        echo of its request."""
        u = client_socket(2.0)
        self.addCleanup(u.close)
        lost, wrong = 0, 0
        for i in range(n):
            payload = os.urandom(sizes[i % len(sizes)])
            u.sendto(payload, ("127.0.0.1", port))
            try:
                data = u.recvfrom(65536)[0]
            except socket.timeout:
                lost += 1
                continue
            if data != b"echo:" + payload:
                wrong += 1
        self.assertEqual((lost, wrong), (0, 0),
                         "%d of %d lost, %d wrong\n%s" % (lost, n, wrong, proc.diagnostics()))

    def check_peers(self, port, peers=20, each=3):
        socks = [client_socket(5.0) for _ in range(peers)]
        try:
            for i, u in enumerate(socks):
                for k in range(each):
                    u.sendto(dns_query(i * 16 + k), ("127.0.0.1", port))
            for i, u in enumerate(socks):
                got = sorted(u.recvfrom(65536)[0] for _ in range(each))
                self.assertEqual(got, sorted(b"echo:" + dns_query(i * 16 + k) for k in range(each)))
        finally:
            for u in socks:
                u.close()

    # ---- direct ----

    def test_direct_thousand_datagrams(self):
        port, p = self.forward()
        self.exchange_many(port, 1000, p, sizes=(1, 12, 512, 1400))
        self.check_peers(port)
        # the default flow is request/response: a flow per datagram (and one per peer of the
        # back-to-back batch), each ended
        text = p.stderr_text()
        self.assertTrue(gostlib.wait_until(lambda: p.stderr_text().count(" >< ") >= 1000 + 20, 5),
                        "flows did not end: %d" % p.stderr_text().count(" >< "))
        self.assertIn('"handler":"udp"', text)
        self.assertIn('"listener":"udp"', text)
        self.assertAlive(p)

    def test_one_answer_per_flow_without_keepalive(self):
        twice = twice_echo()
        self.addCleanup(twice.close)
        port, p = self.forward(target="127.0.0.1:%d" % twice.port)
        u = client_socket()
        self.addCleanup(u.close)
        for i in range(3):
            u.sendto(b"q%d" % i, ("127.0.0.1", port))
            self.assertEqual(drain(u), [b"echo:q%d" % i], p.diagnostics())
        # the target saw each request from a new upstream socket (a new flow each time)
        self.assertEqual(len({peer for _, peer in twice.received}), 3)

    def test_requests_back_to_back_each_answered(self):
        # A resolver sends its A and AAAA queries from one socket at once: GOST ends the flow at
        # the first answer and loses the second; here the flow ends once both are answered
        # (docs/PROTOCOLS.md "udp: port forwarding", a difference on purpose).
        port, p = self.forward()
        self.check_peers(port, peers=20, each=3)
        self.assertAlive(p)

    def test_keepalive_flow_lives_until_ttl(self):
        twice = twice_echo()
        self.addCleanup(twice.close)
        port, p = self.forward(query="keepAlive=true&ttl=1s", target="127.0.0.1:%d" % twice.port)
        u = client_socket()
        self.addCleanup(u.close)
        u.sendto(b"a", ("127.0.0.1", port))
        self.assertEqual(drain(u), [b"echo:a", b"again:a"], p.diagnostics())
        u.sendto(b"b", ("127.0.0.1", port))
        self.assertEqual(drain(u), [b"echo:b", b"again:b"])
        self.assertEqual(len({peer for _, peer in twice.received}), 1, "one flow for both")
        # idle past the ttl: the flow ends (its >< line), the next request opens another
        self.assertTrue(gostlib.wait_until(lambda: " >< " in p.stderr_text(), 4), p.diagnostics())
        u.sendto(b"c", ("127.0.0.1", port))
        self.assertEqual(drain(u), [b"echo:c", b"again:c"])
        self.assertEqual(len({peer for _, peer in twice.received}), 2)
        self.assertAlive(p)

    # ---- through chains ----

    def check_chain(self, scheme, query=""):
        node = self.server(scheme, query)
        port, p = self.forward(chain=(node,))
        self.exchange_many(port, 200, p, sizes=(1, 100, 1400))
        self.check_peers(port)
        self.assertAlive(p)

    def test_relay_chain(self):
        self.check_chain("relay")

    def test_relay_ws_chain(self):
        self.check_chain("relay+ws")

    def test_socks5_chain(self):
        self.check_chain("socks5", "udp=true")

    def test_relay_h3_chain(self):
        self.check_chain("relay+h3")

    # ---- reload ----

    def test_reload_rebinds_and_serves(self):
        # A changed udp service binds its new sockets beside the old ones (SO_REUSEPORT) and the
        # old ones close after the grace: the port answers before, across and after the reloads.
        port = udplib.free_udp_port()

        def config(ttl):
            return ("services:\n- name: dns\n  addr: 127.0.0.1:%d\n  handler: {type: udp}\n"
                    "  listener:\n    type: udp\n    metadata: {ttl: %s}\n"
                    "  forwarder:\n    nodes:\n    - {name: echo, addr: 127.0.0.1:%d}\n"
                    % (port, ttl, self.echo.port))

        path = self.write_file("gost.yaml", config("5s"))
        p = self.start_gost("-C", path)
        self.assertTrue(udplib.wait_udp_bound(p.proc, port, 10.0), p.diagnostics())
        self.exchange_many(port, 20, p)
        for i in range(3):
            with open(path, "w") as f:
                f.write(config("%ds" % (6 + i)))
            before = p.stderr_text().count("config reloaded")
            os.kill(p.pid, signal.SIGHUP)
            self.assertTrue(gostlib.wait_until(
                lambda: p.stderr_text().count("config reloaded") > before, 5), p.diagnostics())
            self.exchange_many(port, 50, p)
        self.assertEqual(p.stderr_text().count("listening on 127.0.0.1:%d/udp" % port), 4)
        self.assertAlive(p)

    # ---- bad input ----

    def test_bad_datagrams_and_dead_target(self):
        port, p = self.forward()
        u = client_socket(1.0)
        self.addCleanup(u.close)
        u.sendto(b"", ("127.0.0.1", port))
        self.assertEqual(drain(u), [b"echo:"])
        big = os.urandom(60000)
        u.sendto(big, ("127.0.0.1", port))
        got = drain(u)
        self.assertEqual(got, [b"echo:" + big[:4096]], "readBufferSize 4096 truncates")
        # a target that does not listen: nothing comes back, the service goes on
        dead = udplib.free_udp_port()
        port2, p2 = self.forward(target="127.0.0.1:%d" % dead, name="dead")
        u.sendto(b"x", ("127.0.0.1", port2))
        self.assertEqual(drain(u), [])
        # garbage from many peers at once (more than the backlog of 8) never stops the service
        port3, p3 = self.forward(query="backlog=8", name="small")
        flood = [client_socket(1.0) for _ in range(40)]
        try:
            for f in flood:
                f.sendto(os.urandom(700), ("127.0.0.1", port3))
        finally:
            for f in flood:
                f.close()
        self.exchange_many(port3, 20, p3)
        self.exchange_many(port, 20, p)
        for proc in (p, p2, p3):
            self.assertAlive(proc)

    def test_target_required(self):
        port = udplib.free_udp_port()
        r = run_gost(["-L", "udp://127.0.0.1:%d" % port], timeout=10)
        stderr = r.stderr.decode("utf-8", "replace")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("needs a forward target", stderr)

    def test_yaml(self):
        r = run_gost(["-L", "udp://:5353/8.8.8.8:53?keepAlive=true&ttl=30s", "-O", "yaml"],
                     timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        for needle in ("type: udp", "addr: :5353", "8.8.8.8:53", 'keepAlive: "true"', "ttl: 30s"):
            self.assertIn(needle, out)
        self.assertNotIn("type: tcp", out)


if __name__ == "__main__":
    gostlib.main()

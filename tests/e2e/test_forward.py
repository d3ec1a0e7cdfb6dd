"""End-to-end tests of TCP port forwarding (docs/PROTOCOLS.md "cli: forwarding"), direct and through
a chain.

Run: /usr/bin/python3 tests/e2e/test_forward.py <path-to-gost>
"""

import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gostlib  # noqa: E402
from gostlib import request_until_close, connect, curl, free_port, free_ports, recv_exact, recv_until_close  # noqa: E402


class ForwardTest(gostlib.GostTestCase):

    def setUp(self):
        self.echo = self.start_server(gostlib.EchoServer())

    def assert_echo(self, port, size=200000, msg=""):
        s = connect(port)
        try:
            payload = os.urandom(size)
            # small first message, then a large one
            s.sendall(b"hello\n")
            self.assertEqual(recv_exact(s, 6), b"hello\n", msg)
            s.sendall(payload)
            got = recv_exact(s, len(payload), timeout=20)
            self.assertEqual(len(got), len(payload), msg)
            self.assertEqual(got, payload, msg)
            s.shutdown(socket.SHUT_WR)
            rest, closed, _ = recv_until_close(s, timeout=15)
            self.assertEqual(rest, b"", msg)
            self.assertTrue(closed, "%s: forwarded connection not closed after EOF" % msg)
        finally:
            s.close()

    def start_forwarder(self, *args, ports):
        """Starts gost and waits until `ports` LISTEN, without connecting to them: the usual
        readiness probe (a connection) would be forwarded to the target and spoil exact counts."""
        g = self.start_gost(*args, wait=False)
        for port in ports:
            if not gostlib.wait_listening(port, gostlib.START_TIMEOUT, proc=g.proc):
                g.expected_exit = True
                self.fail("gost did not listen on 127.0.0.1:%d\n%s" % (port, g.diagnostics()))
        return g

    def test_direct_forward(self):
        p = free_port()
        self.start_forwarder("-L", "tcp://127.0.0.1:%d/%s" % (p, self.echo.addr), ports=[p])
        self.assert_echo(p, msg="direct")
        self.assert_echo(p, msg="direct, second connection")
        self.assertEqual(self.echo.connections, 2)

    def test_forward_through_chain(self):
        p, q = free_ports(2)
        self.start_gost("-L", "http://127.0.0.1:%d" % q, port=q, name="chain-node")
        tap = self.start_server(gostlib.TapProxy(q))
        self.start_gost("-L", "tcp://127.0.0.1:%d/%s" % (p, self.echo.addr),
                        "-F", "http://127.0.0.1:%d" % tap.port, port=p, name="forwarder")
        self.assert_echo(p, msg="through chain")
        # the forwarder reached the target through the http node (docs/PROTOCOLS.md
        # "http: connector")
        expected = ("CONNECT %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: Go-http-client/1.1\r\n"
                    "Proxy-Connection: keep-alive\r\n\r\n" % (self.echo.addr, self.echo.addr)).encode()
        got = tap.wait_capture_prefix(expected + b"hello\n")
        self.assertEqual(got[:len(expected)], expected)
        self.assertEqual(got[len(expected):len(expected) + 6], b"hello\n")

    def test_forward_through_chain_without_tap(self):
        p, q = free_ports(2)
        node = self.start_gost("-L", "http://user:pass@127.0.0.1:%d" % q, port=q, name="chain-node")
        self.start_gost("-L", "tcp://127.0.0.1:%d/%s" % (p, self.echo.addr),
                        "-F", "http://user:pass@127.0.0.1:%d" % q, port=p, name="forwarder")
        self.assert_echo(p, msg="through auth chain")
        node.stop()
        # chain node gone: the forwarded connection must be closed without data
        data, closed = request_until_close(p, b"data", timeout=20)
        self.assertEqual(data, b"")
        self.assertTrue(closed, "connection not closed although the chain node is down")

    def test_forward_to_closed_target_closes(self):
        p = free_port()
        dead = free_port()
        g = self.start_gost("-L", "tcp://127.0.0.1:%d/127.0.0.1:%d" % (p, dead), port=p)
        data, closed = request_until_close(p, b"hello", timeout=20)
        self.assertEqual(data, b"")
        self.assertTrue(closed)
        self.assertAlive(g)

    def test_several_L_in_one_process(self):
        other = self.start_server(gostlib.ReplyAfterEOFServer(b"second target\n"))
        origin = self.start_server(gostlib.OriginServer())
        p1, p2, p3 = free_ports(3)
        g = self.start_gost("-L", "tcp://127.0.0.1:%d/%s" % (p1, self.echo.addr),
                            "-L", "tcp://127.0.0.1:%d/%s" % (p2, other.addr),
                            "-L", "http://127.0.0.1:%d" % p3,
                            ports=[p1, p2, p3])
        self.assert_echo(p1, msg="service 1")
        s = connect(p2)
        try:
            s.sendall(b"abc")
            s.shutdown(socket.SHUT_WR)
            data, closed, _ = recv_until_close(s, timeout=15)
        finally:
            s.close()
        self.assertEqual(data, gostlib.hashlib.sha256(b"abc").digest() + b"second target\n")
        self.assertTrue(closed)
        r = curl(origin.url, proxy="http://127.0.0.1:%d" % p3)
        self.assertEqual((r.rc, r.http_code, r.body), (0, "200", origin.body), r)
        self.assertAlive(g)

    def test_port_range_services(self):
        # docs/PROTOCOLS.md "cli: forwarding": tcp://:8000-8001/h:9000-9001 → two services,
        # service-i gets target i
        tports = gostlib.free_consecutive_ports(2)
        t1 = self.start_server(gostlib.ReplyAfterEOFServer(b"target one", port=tports[0]))
        t2 = self.start_server(gostlib.ReplyAfterEOFServer(b"target two", port=tports[1]))
        lp = gostlib.free_consecutive_ports(2)
        self.start_forwarder("-L", "tcp://127.0.0.1:%d-%d/127.0.0.1:%d-%d"
                             % (lp[0], lp[1], tports[0], tports[1]), ports=lp)
        for port, expect in ((lp[0], b"target one"), (lp[1], b"target two")):
            s = connect(port)
            try:
                s.sendall(b"x")
                s.shutdown(socket.SHUT_WR)
                data, closed, _ = recv_until_close(s, timeout=15)
            finally:
                s.close()
            self.assertEqual(data[32:], expect, "service on port %d" % port)
        self.assertEqual(len(t1.received), 1)
        self.assertEqual(len(t2.received), 1)

    def test_two_targets_round_robin(self):
        # docs/PROTOCOLS.md "cli: forwarding": tcp://:8080/a:80,b:80 → two targets, round robin
        e2 = self.start_server(gostlib.EchoServer())
        p = free_port()
        self.start_forwarder("-L", "tcp://127.0.0.1:%d/%s,%s" % (p, self.echo.addr, e2.addr),
                             ports=[p])
        # each echo server counts a connection before it echoes, so the counts are final once
        # each exchange is done
        for i in range(4):
            self.assert_echo(p, size=1000, msg="connection %d" % i)
            self.assertEqual(self.echo.connections + e2.connections, i + 1)
            self.assertLessEqual(abs(self.echo.connections - e2.connections), 1,
                                 "round robin should alternate targets")
        self.assertEqual(self.echo.connections, 2, "round robin should alternate targets")
        self.assertEqual(e2.connections, 2, "round robin should alternate targets")


if __name__ == "__main__":
    gostlib.main()

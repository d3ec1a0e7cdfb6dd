"""Data integrity through tunnels: 8 MiB both directions at once, and half-close.

Spec: docs/PROTOCOLS.md "http: CONNECT", "core: relay" (half-close).
Run: /usr/bin/python3 tests/e2e/test_integrity.py <path-to-gost>
"""

import hashlib
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gostlib  # noqa: E402
from gostlib import RESP_200_CONNECT, connect, free_port, free_ports, recv_exact, recv_until_close  # noqa: E402

SIZE = 8 * 1024 * 1024
HALF_SIZE = 1024 * 1024
TRANSFER_TIMEOUT = 90


def open_connect_tunnel(testcase, proxy_port, target, auth=None):
    s = connect(proxy_port, timeout=15)
    req = "CONNECT %s HTTP/1.1\r\nHost: %s\r\n" % (target, target)
    if auth:
        req += "Proxy-Authorization: %s\r\n" % auth
    s.sendall((req + "\r\n").encode())
    head = recv_exact(s, len(RESP_200_CONNECT), timeout=15)
    testcase.assertEqual(head, RESP_200_CONNECT)
    return s


class IntegrityTest(gostlib.GostTestCase):

    def setUp(self):
        self.duplex = self.start_server(gostlib.DuplexServer(SIZE))
        self.half_reply = os.urandom(HALF_SIZE)
        self.halfsrv = self.start_server(gostlib.ReplyAfterEOFServer(self.half_reply))

    # -- the two exchanges --------------------------------------------------

    def duplex_exchange(self, sock, label):
        """Send SIZE random bytes while receiving the server's SIZE random bytes."""
        payload = os.urandom(SIZE)
        sent_sha = hashlib.sha256(payload).hexdigest()
        send_err = []
        with self.duplex.lock:
            seen = [r for r in self.duplex.records if r["recv_len"] > 0]

        def sender():
            try:
                view = memoryview(payload)
                off = 0
                while off < len(view):
                    off += sock.send(view[off:off + 65536])
                sock.shutdown(socket.SHUT_WR)  # half-close after sending
            except OSError as e:
                send_err.append(e)

        sock.settimeout(TRANSFER_TIMEOUT)
        t = threading.Thread(target=sender, daemon=True)
        start = time.monotonic()
        t.start()
        h = hashlib.sha256()
        total = 0
        closed = False
        deadline = start + TRANSFER_TIMEOUT
        try:
            while time.monotonic() < deadline:
                d = sock.recv(65536)
                if not d:
                    closed = True
                    break
                h.update(d)
                total += len(d)
        except OSError as e:
            self.fail("%s: receive failed after %d bytes: %r" % (label, total, e))
        t.join(TRANSFER_TIMEOUT)
        self.assertFalse(t.is_alive(), "%s: sender hung" % label)
        self.assertEqual(send_err, [], label)
        self.assertTrue(closed, "%s: no EOF after %d bytes" % (label, total))
        # the record of this connection (readiness probes of forwarders leave empty ones)
        rec = self.duplex.wait_record(lambda r: r["recv_len"] > 0 and r not in seen, timeout=30)
        self.assertIsNotNone(rec, "%s: server did not record a non-empty connection" % label)
        self.assertIsNone(rec["error"], label)
        # client -> server
        self.assertEqual(rec["recv_len"], SIZE, "%s: server received %d bytes" % (label, rec["recv_len"]))
        self.assertEqual(rec["recv_sha"], sent_sha, "%s: client->server data corrupted" % label)
        # server -> client
        self.assertEqual(total, SIZE, "%s: client received %d bytes" % (label, total))
        self.assertEqual(h.hexdigest(), rec["sent_sha"], "%s: server->client data corrupted" % label)

    def half_close_exchange(self, sock, label):
        """Send HALF_SIZE bytes, shut down the write side, then still receive the whole reply."""
        payload = os.urandom(HALF_SIZE)
        sock.settimeout(TRANSFER_TIMEOUT)
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        data, closed, _ = recv_until_close(sock, timeout=TRANSFER_TIMEOUT)
        self.assertTrue(closed, "%s: no EOF after reply" % label)
        self.assertEqual(len(data), 32 + HALF_SIZE, "%s: got %d bytes" % (label, len(data)))
        self.assertEqual(data[:32], hashlib.sha256(payload).digest(), "%s: target saw other bytes" % label)
        self.assertEqual(data[32:], self.half_reply, "%s: reply corrupted" % label)

    def both_ways_and_half_close(self, front, label, open_tunnel=None):
        """The two exchanges through `front`, each over a tunnel of its own that
        `open_tunnel(testcase, front, target)` opens (default: an HTTP CONNECT)."""
        open_tunnel = open_tunnel or open_connect_tunnel
        s = open_tunnel(self, front, self.duplex.addr)
        try:
            start = time.monotonic()
            self.duplex_exchange(s, label)
            sys.stderr.write("%s: 8 MiB both ways in %.2fs\n" % (label, time.monotonic() - start))
        finally:
            s.close()
        s = open_tunnel(self, front, self.halfsrv.addr)
        try:
            self.half_close_exchange(s, label + " half-close")
        finally:
            s.close()

    # -- CONNECT tunnel -----------------------------------------------------

    def test_connect_tunnel_8MiB_both_directions(self):
        p = free_port()
        self.start_gost("-L", "http://127.0.0.1:%d" % p, port=p)
        s = open_connect_tunnel(self, p, self.duplex.addr)
        try:
            self.duplex_exchange(s, "CONNECT")
        finally:
            s.close()

    def test_connect_tunnel_half_close(self):
        p = free_port()
        self.start_gost("-L", "http://127.0.0.1:%d" % p, port=p)
        s = open_connect_tunnel(self, p, self.halfsrv.addr)
        try:
            self.half_close_exchange(s, "CONNECT half-close")
        finally:
            s.close()

    # -- mixed chains: http -> socks5 -> relay -> target ------------------------

    def mixed_chain(self, relay_scheme):
        """front http proxy -F socks5://B -F <relay_scheme>://C: one client process reaches the
        target through a SOCKS5 node (GOST's TLS method by default) and then a relay node."""
        a, b, c = free_ports(3)
        self.socks5_node = self.start_gost("-L", "socks5://user:pass@127.0.0.1:%d" % b, port=b,
                                           name="socks5-node")
        self.relay_node = self.start_gost("-L", "%s://u2:p2@127.0.0.1:%d" % (relay_scheme, c),
                                          port=c, name="relay-node")
        self.relay_addr = "127.0.0.1:%d" % c
        self.start_gost("-L", "http://127.0.0.1:%d" % a,
                        "-F", "socks5://user:pass@127.0.0.1:%d" % b,
                        "-F", "%s://u2:p2@127.0.0.1:%d" % (relay_scheme, c), port=a, name="front")
        return a

    def assert_mixed_path(self, targets, label):
        """Each tunnel went front → socks5 node → relay node → target: the socks5 node carried
        one tunnel to the relay node per target, the relay node one to each target."""
        gostlib.assert_tunnels_through(self, self.socks5_node, self.relay_addr, len(targets), label)
        for target in targets:
            gostlib.assert_tunnels_through(self, self.relay_node, target, 1, label)

    def test_mixed_chain_http_socks5_relay_8MiB_both_directions(self):
        a = self.mixed_chain("relay")
        s = open_connect_tunnel(self, a, self.duplex.addr)
        try:
            self.duplex_exchange(s, "http -> socks5 -> relay")
        finally:
            s.close()
        self.assert_mixed_path([self.duplex.addr], "http -> socks5 -> relay")

    def test_mixed_chain_http_socks5_relay_tls_8MiB_and_half_close(self):
        a = self.mixed_chain("relay+tls")
        s = open_connect_tunnel(self, a, self.duplex.addr)
        try:
            self.duplex_exchange(s, "http -> socks5 -> relay+tls")
        finally:
            s.close()
        s = open_connect_tunnel(self, a, self.halfsrv.addr)
        try:
            self.half_close_exchange(s, "http -> socks5 -> relay+tls half-close")
        finally:
            s.close()
        self.assert_mixed_path([self.duplex.addr, self.halfsrv.addr], "http -> socks5 -> relay+tls")

    # -- tcp port forwarding ------------------------------------------------

    def test_tcp_forward_8MiB_both_directions(self):
        p = free_port()
        self.start_gost("-L", "tcp://127.0.0.1:%d/%s" % (p, self.duplex.addr), port=p)
        # the readiness probe made one (empty) connection to the target; let it finish
        self.duplex.wait_records(1, timeout=3)
        s = connect(p, timeout=15)
        try:
            self.duplex_exchange(s, "tcp forward")
        finally:
            s.close()

    def test_tcp_forward_half_close(self):
        p = free_port()
        self.start_gost("-L", "tcp://127.0.0.1:%d/%s" % (p, self.halfsrv.addr), port=p)
        s = connect(p, timeout=15)
        try:
            self.half_close_exchange(s, "tcp forward half-close")
        finally:
            s.close()

    # -- 2-hop chain ----------------------------------------------------------

    def _two_hop(self):
        a, b = free_ports(2)
        self.start_gost("-L", "http://user:pass@127.0.0.1:%d" % b, port=b, name="hop-B")
        self.start_gost("-L", "http://127.0.0.1:%d" % a, "-F", "http://user:pass@127.0.0.1:%d" % b,
                        port=a, name="front-A")
        return a

    def test_two_hop_chain_8MiB_both_directions(self):
        a = self._two_hop()
        s = open_connect_tunnel(self, a, self.duplex.addr)
        try:
            self.duplex_exchange(s, "2-hop chain")
        finally:
            s.close()

    def test_two_hop_chain_half_close(self):
        a = self._two_hop()
        s = open_connect_tunnel(self, a, self.halfsrv.addr)
        try:
            self.half_close_exchange(s, "2-hop chain half-close")
        finally:
            s.close()

    def test_forward_through_chain_8MiB_both_directions(self):
        p, q = free_ports(2)
        self.start_gost("-L", "http://127.0.0.1:%d" % q, port=q, name="chain-node")
        self.start_gost("-L", "tcp://127.0.0.1:%d/%s" % (p, self.duplex.addr),
                        "-F", "http://127.0.0.1:%d" % q, port=p, name="forwarder")
        self.duplex.wait_records(1, timeout=3)
        s = connect(p, timeout=15)
        try:
            self.duplex_exchange(s, "tcp forward via chain")
        finally:
            s.close()


if __name__ == "__main__":
    gostlib.main()

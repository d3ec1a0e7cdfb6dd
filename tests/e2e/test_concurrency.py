"""Many simultaneous connections through the proxy.

Run: /usr/bin/python3 tests/e2e/test_concurrency.py <path-to-gost>
"""

import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gostlib  # noqa: E402
from gostlib import (RESP_200_CONNECT, basic, connect, free_port, free_ports, recv_exact,  # noqa: E402
                     recv_until_close, HTTPResponseReader)

N_CONNECT = 200
N_GET = 100
EXCHANGE = 4096
BOUND = 60.0  # seconds for the whole batch


class ConcurrencyTest(gostlib.GostTestCase):

    def setUp(self):
        self.echo = self.start_server(gostlib.EchoServer())
        self.origin = self.start_server(gostlib.OriginServer())

    def run_connect_batch(self, proxy_port, n, auth=None):
        """n threads, each a CONNECT to the echo server; all tunnels are open at the same
        time (barrier) before data is exchanged. Returns (errors, elapsed)."""
        barrier = threading.Barrier(n, timeout=BOUND)
        errors = []
        ok = []
        lock = threading.Lock()

        def worker(i):
            s = None
            try:
                s = socket.create_connection(("127.0.0.1", proxy_port), timeout=BOUND)
                s.settimeout(BOUND)
                req = "CONNECT %s HTTP/1.1\r\nHost: %s\r\n" % (self.echo.addr, self.echo.addr)
                if auth:
                    req += "Proxy-Authorization: %s\r\n" % auth
                s.sendall((req + "\r\n").encode())
                head = recv_exact(s, len(RESP_200_CONNECT), timeout=BOUND)
                if head != RESP_200_CONNECT:
                    raise AssertionError("bad CONNECT reply %r" % head)
                barrier.wait()
                payload = os.urandom(EXCHANGE - 8) + b"%08d" % i
                s.sendall(payload)
                back = recv_exact(s, len(payload), timeout=BOUND)
                if back != payload:
                    raise AssertionError("echo mismatch: got %d bytes" % len(back))
                s.shutdown(socket.SHUT_WR)
                rest, closed, _ = recv_until_close(s, timeout=BOUND)
                if rest or not closed:
                    raise AssertionError("tunnel end: rest=%r closed=%r" % (rest[:50], closed))
                with lock:
                    ok.append(i)
            except Exception as e:  # noqa: BLE001 - collect everything
                with lock:
                    errors.append((i, repr(e)))
                try:
                    barrier.abort()
                except Exception:  # noqa: BLE001
                    pass
            finally:
                if s is not None:
                    s.close()

        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(0.1, start + BOUND + 15 - time.monotonic()))
        elapsed = time.monotonic() - start
        hung = sum(1 for t in threads if t.is_alive())
        if hung:
            errors.append((-1, "%d threads still running after %.0fs" % (hung, elapsed)))
        return ok, errors, elapsed

    def check_batch(self, ok, errors, elapsed, n):
        # A broken barrier in the other threads is a consequence; show the root causes first.
        root = [e for e in errors if "BrokenBarrierError" not in e[1]]
        self.assertEqual(errors, [], "%d/%d failed; first root causes: %r"
                         % (len(errors), n, (root or errors)[:5]))
        self.assertEqual(len(ok), n)
        self.assertLess(elapsed, BOUND, "took %.1fs" % elapsed)

    def test_200_concurrent_connect_tunnels(self):
        p = free_port()
        g = self.start_gost("-L", "http://127.0.0.1:%d" % p, port=p)
        ok, errors, elapsed = self.run_connect_batch(p, N_CONNECT)
        self.check_batch(ok, errors, elapsed, N_CONNECT)
        self.assertAlive(g)
        # and it still works afterwards
        r = gostlib.curl(self.origin.url, proxy="http://127.0.0.1:%d" % p)
        self.assertEqual((r.http_code, r.body), ("200", self.origin.body), r)

    def test_200_concurrent_connect_tunnels_with_auth(self):
        p = free_port()
        g = self.start_gost("-L", "http://user:pass@127.0.0.1:%d" % p, port=p)
        ok, errors, elapsed = self.run_connect_batch(p, N_CONNECT, auth=basic("user", "pass"))
        self.check_batch(ok, errors, elapsed, N_CONNECT)
        self.assertAlive(g)

    def test_200_concurrent_through_two_hop_chain(self):
        a, b = free_ports(2)
        self.start_gost("-L", "http://127.0.0.1:%d" % b, port=b, name="hop-B")
        self.start_gost("-L", "http://127.0.0.1:%d" % a, "-F", "http://127.0.0.1:%d" % b,
                        port=a, name="front-A")
        ok, errors, elapsed = self.run_connect_batch(a, N_CONNECT)
        self.check_batch(ok, errors, elapsed, N_CONNECT)

    def test_concurrent_forward_proxy_gets(self):
        p = free_port()
        self.start_gost("-L", "http://127.0.0.1:%d" % p, port=p)
        errors = []
        lock = threading.Lock()

        def worker(i):
            try:
                s = connect(p, timeout=BOUND)
                try:
                    path = "/path/%d" % i
                    s.sendall(("GET http://%s%s HTTP/1.1\r\nHost: %s\r\n\r\n"
                               % (self.origin.addr, path, self.origin.addr)).encode())
                    code, status, _, body, _, _ = HTTPResponseReader(s, timeout=BOUND).read_response()
                    if code != 200 or body != ("path=%s" % path).encode():
                        raise AssertionError("%s -> %s %r" % (path, status, body[:60]))
                finally:
                    s.close()
            except Exception as e:  # noqa: BLE001
                with lock:
                    errors.append((i, repr(e)))

        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(N_GET)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(0.1, start + BOUND + 15 - time.monotonic()))
        hung = sum(1 for t in threads if t.is_alive())
        self.assertEqual(hung, 0, "%d GET threads hung" % hung)
        self.assertEqual(errors, [], "%d/%d failed: %r" % (len(errors), N_GET, errors[:5]))
        self.assertLess(time.monotonic() - start, BOUND)
        self.assertEqual(len(self.origin.requests), N_GET)


if __name__ == "__main__":
    gostlib.main()

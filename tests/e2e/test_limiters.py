"""Traffic, connection and request-rate limiters (docs/ARCHITECTURE.md "Limiters").

- traffic (`limiters`, `?limiter.in=`/`?limiter.out=`): the steady rate through a limited
  service is the limit within 10 %, both ways at once, on the splice path (`-L tcp://`) and
  through relay+ws; `$$` is per connection, `$` shared; a CIDR line limits only its clients;
- an unlimited service still splices (its pipes show in /proc), a limited one does not;
- connections (`?climiter=N`): the N+1th is closed right after accept, and admitted again once
  one ends;
- requests (`?rlimiter=R`): beyond the rate a connection is closed without a reply;
- a reload that changes a limiter applies to new connections;
- sources (docs/PROTOCOLS.md "config: dynamic sources"): a limiter whose lines come from a file
  that changes takes the new rate within a few reload periods (a file line beats the inline line
  of the same key) and keeps it when the file goes away; one whose lines come from a Redis set
  starts unlimited, limits once a line is added and keeps it with Redis down; a climiter from a
  file admits more once its file says so, the connections already open counting against the new
  limit; an rlimiter reads a Redis list (`type: list`) and an HTTP source, whose later line wins.
"""

import os
import signal
import socket
import sys
import threading
import time
import unittest

import gostlib
from gostlib import GostTestCase, free_port, free_ports, recv_exact, wait_port, wait_until
from test_sources import REDIS_SERVER, HttpSource, RedisServer, redis_cmd

KiB = 1024
MiB = 1024 * 1024
TOLERANCE = 0.10


class Samples:
    """(monotonic time, total bytes) as bytes arrive; shared by the connections that add to it."""

    def __init__(self):
        self.lock = threading.Lock()
        self.points = []
        self.total = 0

    def add(self, n):
        with self.lock:
            self.total += n
            self.points.append((time.monotonic(), self.total))

    def steady_rate(self, skip):
        """Bytes per second from the moment `skip` bytes had arrived to the last byte: the
        bucket's initial burst (one second of its rate) is not the steady rate."""
        with self.lock:
            pts = list(self.points)
        start = next((p for p in pts if p[1] >= skip), None)
        if start is None or pts[-1][0] - start[0] < 0.5:
            raise AssertionError("too few bytes after the burst: %r" % (pts[-1:],))
        return (pts[-1][1] - start[1]) / (pts[-1][0] - start[0])


def pump(sock, size, samples_in, timeout=60):
    """Sends `size` bytes (then FIN) while reading until EOF into `samples_in`."""
    err = []

    def sender():
        try:
            chunk = os.urandom(64 * KiB)
            left = size
            while left > 0:
                n = sock.send(chunk[:min(left, len(chunk))])
                left -= n
            sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            err.append(e)

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    sock.settimeout(timeout)
    while True:
        d = sock.recv(256 * KiB)
        if not d:
            break
        samples_in.add(len(d))
    t.join(timeout)
    if err:
        raise err[0]


class RateServer:
    """Per connection: sends `send_size` bytes while reading until EOF; what arrives (from all
    connections) goes into `received`."""

    def __init__(self, send_size):
        self.send_size = send_size
        self.received = Samples()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            pump(c, self.send_size, self.received)
        except OSError:
            pass
        finally:
            c.close()

    def wait_bytes(self, n, timeout=30):
        """Waits until `n` bytes have arrived in all (a client is done sending long before a
        limited gost has passed it all on); bounded."""
        deadline = time.monotonic() + timeout
        while self.received.total < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.received.total >= n

    def close(self):
        self.closed = True
        self.sock.close()


def transfer(port, size, source=None, timeout=60):
    """One connection through gost: sends `size` bytes, returns the Samples it received."""
    got = Samples()
    s = socket.create_connection(("127.0.0.1", port), timeout=10,
                                 source_address=(source, 0) if source else None)
    try:
        pump(s, size, got, timeout)
    finally:
        s.close()
    return got


def pipes_of(pid):
    """How many pipes the process holds (the relay's splice pipes, core/relay.cpp)."""
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("pipe:"):
                n += 1
        except OSError:
            pass
    return n


class TrafficLimits(GostTestCase):
    def check_both_ways(self, port, server, rate_in, rate_out):
        # Several MB both ways at once on one connection: 3.5 s of IN, 3 s of OUT after bursts.
        got = transfer(port, int(rate_in * 3.5))
        self.assertTrue(server.wait_bytes(int(rate_in * 3.5)))
        r_in = server.received.steady_rate(skip=rate_in * 1.25)
        r_out = got.steady_rate(skip=rate_out * 1.25)
        self.assertEqual(server.received.total, int(rate_in * 3.5))
        self.assertEqual(got.total, server.send_size)
        self.assertLess(abs(r_in / rate_in - 1), TOLERANCE, "in: %.0f B/s" % r_in)
        self.assertLess(abs(r_out / rate_out - 1), TOLERANCE, "out: %.0f B/s" % r_out)

    def test_tcp_forward_in_and_out(self):
        server = self.start_server(RateServer(send_size=int(512 * KiB * 3.5)))
        port = free_port()
        p = self.start_gost("-L", "tcp://:%d/127.0.0.1:%d?limiter.in=1MB&limiter.out=512KB"
                            % (port, server.port), port=port)
        self.check_both_ways(port, server, 1 * MiB, 512 * KiB)
        # A limited tunnel leaves the splice path: no pipe was ever taken.
        self.assertEqual(pipes_of(p.pid), 0)

    def test_relay_ws_in_and_out(self):
        server = self.start_server(RateServer(send_size=int(512 * KiB * 3.5)))
        relay, front = free_ports(2)
        self.start_gost("-L", "relay+ws://:%d?limiter.in=1MB&limiter.out=512KB" % relay,
                        port=relay, name="relay-server")
        self.start_gost("-L", "tcp://:%d/127.0.0.1:%d" % (front, server.port),
                        "-F", "relay+ws://127.0.0.1:%d" % relay, port=front, name="client")
        self.check_both_ways(front, server, 1 * MiB, 512 * KiB)

    def test_http2_proxy_streams(self):
        # The http2 handler reads its request from the HTTP/2 stream under the limiter's wrapper.
        server = self.start_server(RateServer(send_size=int(512 * KiB * 3.5)))
        proxy, front = free_ports(2)
        self.start_gost("-L", "http2://:%d?limiter.in=1MB&limiter.out=512KB" % proxy,
                        port=proxy, name="http2-server")
        self.start_gost("-L", "tcp://:%d/127.0.0.1:%d" % (front, server.port),
                        "-F", "http2://127.0.0.1:%d" % proxy, port=front, name="client")
        self.check_both_ways(front, server, 1 * MiB, 512 * KiB)

    def test_unlimited_service_still_splices(self):
        server = self.start_server(RateServer(send_size=4 * MiB))
        port = free_port()
        # Waits for LISTEN without connecting: wait_port's probe connection would be forwarded
        # to the server and could leave a pipe of its own before the transfer starts.
        p = self.start_gost("-L", "tcp://:%d/127.0.0.1:%d" % (port, server.port), wait=False)
        self.assertTrue(gostlib.wait_listening(port, proc=p.proc), "gost did not listen")
        self.assertEqual(pipes_of(p.pid), 0, "pipes before any connection")
        t = time.monotonic()
        got = transfer(port, 4 * MiB)
        took = time.monotonic() - t
        self.assertEqual(got.total, 4 * MiB, "bytes back after %.2fs" % took)
        self.assertTrue(server.wait_bytes(4 * MiB, timeout=10),
                        "the target got %d of %d bytes" % (server.received.total, 4 * MiB))
        self.assertLess(took, 10, "4 MiB both ways took %.2fs" % took)
        # The splice path's pipes go back to a per-thread pool: there they are (the relay may
        # still be finishing its other direction when the client has its EOF).
        self.assertTrue(wait_until(lambda: pipes_of(p.pid) > 0, timeout=5),
                        "no splice pipe in the process after the transfer")

    def per_connection_vs_shared(self, line):
        rate = 256 * KiB
        server = self.start_server(RateServer(send_size=0))
        port = free_port()
        cfg = self.write_file("gost.yaml", f"""
services:
- name: svc
  addr: :{port}
  limiter: lim
  handler: {{type: tcp}}
  listener: {{type: tcp}}
  forwarder: {{nodes: [{{name: t, addr: 127.0.0.1:{server.port}}}]}}
limiters:
- name: lim
  limits: ["{line} 256KB"]
""")
        self.start_gost("-C", cfg, port=port)
        threads = [threading.Thread(target=transfer, args=(port, 2 * rate)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertTrue(server.wait_bytes(4 * rate))
        self.assertEqual(server.received.total, 4 * rate)
        return server.received.steady_rate(skip=rate * 2.5) / rate

    def test_dollar_dollar_is_per_connection(self):
        both = self.per_connection_vs_shared("$$")
        self.assertLess(abs(both / 2 - 1), TOLERANCE * 1.5, "two connections: %.2f x" % both)

    def test_dollar_is_shared_by_the_service(self):
        both = self.per_connection_vs_shared("$")
        self.assertLess(abs(both - 1), TOLERANCE, "two connections: %.2f x" % both)

    def test_cidr_line_limits_its_clients_only(self):
        rate = 256 * KiB
        server = self.start_server(RateServer(send_size=0))
        port = free_port()
        cfg = self.write_file("gost.yaml", f"""
services:
- name: svc
  addr: :{port}
  limiter: lim
  handler: {{type: tcp}}
  listener: {{type: tcp}}
  forwarder: {{nodes: [{{name: t, addr: 127.0.0.1:{server.port}}}]}}
limiters:
- name: lim
  limits: ["127.0.0.2/32 256KB 256KB", "10.0.0.0/8 1KB"]
""")
        self.start_gost("-C", cfg, port=port)
        t = time.monotonic()
        transfer(port, 8 * MiB)  # 127.0.0.1: no line for it
        self.assertTrue(server.wait_bytes(8 * MiB))
        self.assertLess(time.monotonic() - t, 5)
        self.assertEqual(server.received.total, 8 * MiB)
        server.received = Samples()
        transfer(port, 3 * rate, source="127.0.0.2")
        self.assertTrue(server.wait_bytes(3 * rate))
        r = server.received.steady_rate(skip=rate * 1.25)
        self.assertLess(abs(r / rate - 1), TOLERANCE, "127.0.0.2: %.0f B/s" % r)

    def test_reload_applies_a_changed_limiter_to_new_connections(self):
        server = self.start_server(RateServer(send_size=0))
        port = free_port()
        text = """
services:
- name: svc
  addr: :%d
  limiter: lim
  handler: {type: tcp}
  listener: {type: tcp}
  forwarder: {nodes: [{name: t, addr: 127.0.0.1:%d}]}
limiters:
- name: lim
  limits: ["$ %s"]
"""
        cfg = self.write_file("gost.yaml", text % (port, server.port, "128KB"))
        p = self.start_gost("-C", cfg, port=port)
        transfer(port, 384 * KiB)
        self.assertTrue(server.wait_bytes(384 * KiB))
        r = server.received.steady_rate(skip=160 * KiB)
        self.assertLess(abs(r / (128 * KiB) - 1), TOLERANCE, "before: %.0f B/s" % r)
        with open(cfg, "w") as f:
            f.write(text % (port, server.port, "512KB"))
        listening = p.stderr_text().count("listening on")
        os.kill(p.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while p.stderr_text().count("listening on") == listening and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertGreater(p.stderr_text().count("listening on"), listening)
        time.sleep(0.5)  # the old listener retires after a short grace
        server.received = Samples()
        transfer(port, 3 * 512 * KiB)
        self.assertTrue(server.wait_bytes(3 * 512 * KiB))
        r = server.received.steady_rate(skip=640 * KiB)
        self.assertLess(abs(r / (512 * KiB) - 1), TOLERANCE, "after: %.0f B/s" % r)


RELOAD_WAIT = 3.5  # a source change is seen within a few 1 s reload periods


def forward_config(port, target, key, kind, name, body):
    return f"""
services:
- name: svc
  addr: :{port}
  {key}: {name}
  handler: {{type: tcp}}
  listener: {{type: tcp}}
  forwarder: {{nodes: [{{name: t, addr: 127.0.0.1:{target}}}]}}
{kind}:
- name: {name}
  reload: 1s
{body}"""


def loader_errors(proc, what):
    return [ln for ln in proc.stderr_text().splitlines() + proc.stdout_text().splitlines()
            if ("%s loader:" % what) in ln and "recovered" not in ln]


class LimiterSources(GostTestCase):
    def steady(self, port, server, rate):
        """One new connection's steady rate (IN), from a fresh count."""
        server.received = Samples()
        transfer(port, 3 * rate)
        self.assertTrue(server.wait_bytes(3 * rate))
        return server.received.steady_rate(skip=rate * 1.25)

    def test_traffic_limiter_from_a_file_that_changes(self):
        server = self.start_server(RateServer(send_size=0))
        port = free_port()
        limits = self.write_file("limits.txt", "$ 128KB  # from the file\n")
        cfg = self.write_file("gost.yaml", forward_config(
            port, server.port, "limiter", "limiters", "lim",
            f"  limits: ['$ 1MB']\n  file: {{path: {limits}}}\n"))
        p = self.start_gost("-C", cfg, port=port)
        r = self.steady(port, server, 128 * KiB)  # the file's line wins over the inline one
        self.assertLess(abs(r / (128 * KiB) - 1), TOLERANCE, "file 128KB: %.0f B/s" % r)
        with open(limits, "w") as f:
            f.write("$ 512KB\n")
        # 64 KiB probes: half a second each under the drained 128KB bucket, at once under the new
        # (full) 512KB one. The change must show within a few reload periods.
        changed = time.monotonic()
        while True:
            t = time.monotonic()
            server.received = Samples()
            transfer(port, 64 * KiB)  # returns once sent: the server tells when it got through
            self.assertTrue(server.wait_bytes(64 * KiB))
            if time.monotonic() - t < 0.2:
                break
            self.assertLess(time.monotonic() - changed, RELOAD_WAIT, "the file change never applied")
        print("new rate applied %.1f s after the file changed" % (time.monotonic() - changed))
        r = self.steady(port, server, 512 * KiB)
        self.assertLess(abs(r / (512 * KiB) - 1), TOLERANCE, "file 512KB: %.0f B/s" % r)
        # The file goes away: one log line, the last good lines stay.
        os.unlink(limits)
        self.assertTrue(wait_until(lambda: loader_errors(p, "file"), timeout=RELOAD_WAIT))
        r = self.steady(port, server, 512 * KiB)
        self.assertLess(abs(r / (512 * KiB) - 1), TOLERANCE, "file gone: %.0f B/s" % r)
        self.assertEqual(len(loader_errors(p, "file")), 1, loader_errors(p, "file"))

    @unittest.skipUnless(REDIS_SERVER, "redis-server is not installed (scripts/setup.sh)")
    def test_traffic_limiter_from_a_redis_set(self):
        redis = self.start_server(RedisServer())
        server = self.start_server(RateServer(send_size=0))
        port = free_port()
        cfg = self.write_file("gost.yaml", forward_config(
            port, server.port, "limiter", "limiters", "lim",
            f"  redis: {{addr: 127.0.0.1:{redis.port}, key: gost:limits}}\n"))
        p = self.start_gost("-C", cfg, port=port)
        # No line yet: unlimited.
        t = time.monotonic()
        transfer(port, 8 * MiB)
        self.assertTrue(server.wait_bytes(8 * MiB))
        self.assertLess(time.monotonic() - t, 5)
        self.assertEqual(redis_cmd(redis.port, "SADD", "gost:limits", "$ 256KB 256KB"), b":1\r\n")
        time.sleep(RELOAD_WAIT)
        r = self.steady(port, server, 256 * KiB)
        self.assertLess(abs(r / (256 * KiB) - 1), TOLERANCE, "redis 256KB: %.0f B/s" % r)
        # Redis goes down: the last good lines stay.
        redis.stop()
        self.assertTrue(wait_until(lambda: loader_errors(p, "redis"), timeout=RELOAD_WAIT))
        r = self.steady(port, server, 256 * KiB)
        self.assertLess(abs(r / (256 * KiB) - 1), TOLERANCE, "redis down: %.0f B/s" % r)


class ConnectionLimits(GostTestCase):
    def echo_ok(self, s, data=b"ping"):
        s.sendall(data)
        return recv_exact(s, len(data), timeout=5) == data

    def admitted(self, port, source=None, within=5):
        """A connection that echoes, retried while start-up's port probe may still hold a place
        (bounded: a limiter that never admits fails here)."""
        deadline = time.monotonic() + within
        while True:
            s = socket.create_connection(("127.0.0.1", port), timeout=5,
                                         source_address=(source, 0) if source else None)
            self.addCleanup(s.close)
            try:
                if self.echo_ok(s):
                    return s
            except OSError:
                pass
            self.assertLess(time.monotonic(), deadline, "never admitted")
            time.sleep(0.1)

    def closed_without_data(self, s, timeout=5):
        s.settimeout(timeout)
        try:
            return s.recv(1) == b""
        except ConnectionResetError:
            return True

    def test_extra_connection_closed_after_accept_and_admitted_later(self):
        echo = self.start_server(gostlib.EchoServer())
        port = free_port()
        self.start_gost("-L", "tcp://:%d/127.0.0.1:%d?climiter=2" % (port, echo.port), port=port)
        a = self.admitted(port)
        b = self.admitted(port)
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.addCleanup(c.close)
        t = time.monotonic()
        self.assertTrue(self.closed_without_data(c))
        self.assertLess(time.monotonic() - t, 2)
        a.close()  # its tunnel ends, and with it its place
        self.admitted(port)
        self.assertTrue(self.echo_ok(b))

    def test_per_ip_limit(self):
        echo = self.start_server(gostlib.EchoServer())
        port = free_port()
        cfg = self.write_file("gost.yaml", f"""
services:
- name: svc
  addr: :{port}
  climiter: cl
  handler: {{type: tcp}}
  listener: {{type: tcp}}
  forwarder: {{nodes: [{{name: t, addr: 127.0.0.1:{echo.port}}}]}}
climiters:
- name: cl
  limits: ["$$ 1"]
""")
        self.start_gost("-C", cfg, port=port)
        self.admitted(port)
        b = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.addCleanup(b.close)
        self.assertTrue(self.closed_without_data(b))
        self.admitted(port, source="127.0.0.2")  # another client IP has its own


    def test_climiter_from_a_file(self):
        echo = self.start_server(gostlib.EchoServer())
        port = free_port()
        limits = self.write_file("climits.txt", "$ 1\n")
        cfg = self.write_file("gost.yaml", forward_config(
            port, echo.port, "climiter", "climiters", "cl", f"  file: {{path: {limits}}}\n"))
        self.start_gost("-C", cfg, port=port)
        a = self.admitted(port)
        b = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.addCleanup(b.close)
        self.assertTrue(self.closed_without_data(b))
        with open(limits, "w") as f:
            f.write("$ 2\n")
        self.admitted(port, within=RELOAD_WAIT + 2)
        # The open connection still counts under the new limit: 2 of 2.
        d = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.addCleanup(d.close)
        self.assertTrue(self.closed_without_data(d))
        self.assertTrue(self.echo_ok(a))


class RequestRateLimits(GostTestCase):
    def connect_request(self, port, target):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            s.sendall(b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target))
            s.settimeout(5)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    d = s.recv(4096)
                    if not d:
                        break
                    data += d
            except ConnectionResetError:
                pass
            return data
        finally:
            s.close()

    def test_requests_beyond_the_rate_closed_without_reply(self):
        echo = self.start_server(gostlib.EchoServer())
        port = free_port()
        self.start_gost("-L", "http://:%d?rlimiter=1" % port, port=port)
        time.sleep(1.1)  # start-up's port probe was a request too: let the bucket refill
        target = b"127.0.0.1:%d" % echo.port
        # Burst int(1)+1 = 2: two answered, then closed without a byte (a reset or a FIN).
        answers = [self.connect_request(port, target) for _ in range(4)]
        self.assertTrue(answers[0].startswith(b"HTTP/1.1 200"), answers)
        self.assertTrue(answers[1].startswith(b"HTTP/1.1 200"), answers)
        self.assertEqual(answers[2:], [b"", b""])
        time.sleep(1.1)
        self.assertTrue(self.connect_request(port, target).startswith(b"HTTP/1.1 200"))


    @unittest.skipUnless(REDIS_SERVER, "redis-server is not installed (scripts/setup.sh)")
    def test_rlimiter_from_a_redis_list_and_http(self):
        echo = self.start_server(gostlib.EchoServer())
        redis = self.start_server(RedisServer())
        web = self.start_server(HttpSource(body=b""))
        self.assertEqual(redis_cmd(redis.port, "RPUSH", "rl", "$ 1"), b":1\r\n")
        port = free_port()
        cfg = self.write_file("gost.yaml", f"""
services:
- name: svc
  addr: :{port}
  rlimiter: rl
  handler: {{type: http}}
  listener: {{type: tcp}}
rlimiters:
- name: rl
  reload: 1s
  redis: {{addr: 127.0.0.1:{redis.port}, key: rl, type: list}}
  http: {{url: "{web.url}"}}
""")
        self.start_gost("-C", cfg, port=port)
        time.sleep(1.1)  # start-up's port probe was a request too: let the bucket refill
        target = b"127.0.0.1:%d" % echo.port
        answers = [self.connect_request(port, target) for _ in range(4)]
        self.assertTrue(answers[0].startswith(b"HTTP/1.1 200"), answers)
        self.assertTrue(answers[1].startswith(b"HTTP/1.1 200"), answers)
        self.assertEqual(answers[2:], [b"", b""])
        # The HTTP source's line comes after Redis's and wins: 100 a second.
        web.set(body=b"$ 100\n")
        self.assertTrue(wait_until(
            lambda: self.connect_request(port, target).startswith(b"HTTP/1.1 200"), timeout=RELOAD_WAIT))
        answers = [self.connect_request(port, target) for _ in range(10)]
        self.assertTrue(all(a.startswith(b"HTTP/1.1 200") for a in answers), answers)



class LimiterPlugin(GostTestCase):
    """GOST's traffic limiter plugin (go-gost/x limiter/traffic/plugin): one client limited to
    the rate the plugin answers for it, another unlimited; the questions' shape; a failing
    plugin leaves the service up and unlimited (docs/ARCHITECTURE.md "Limiters")."""

    def config(self, port, target, url, refresh=None):
        metadata = "\n  metadata: {limiter.refreshInterval: %s}" % refresh if refresh else ""
        return self.write_file("gost.yaml", f"""
services:
- name: svc
  addr: 127.0.0.1:{port}
  limiter: lim{metadata}
  handler: {{type: tcp}}
  listener: {{type: tcp}}
  forwarder: {{nodes: [{{name: t, addr: 127.0.0.1:{target}}}]}}
limiters:
- name: lim
  plugin: {{type: http, addr: "{url}", timeout: 1s}}
""")

    def test_plugin_limits_one_client_and_not_the_other(self):
        from test_plugins import PluginServer
        rate = 256 * KiB
        plugin = self.start_server(PluginServer())

        def answer(path, req):
            if req.get("scope") == "conn" and req.get("src", "").startswith("127.0.0.2:"):
                return {"in": rate, "out": rate}
            return {"in": 0, "out": 0}
        plugin.answer = answer
        server = self.start_server(RateServer(send_size=0))
        port = free_port()
        p = self.start_gost("-C", self.config(port, server.port, plugin.url("/lim")), port=port)
        # The start-up probe's connection asks first; later ones use its service-scope answer.
        self.assertTrue(wait_until(lambda: plugin.count("/lim") >= 2))
        time.sleep(0.2)
        t = time.monotonic()
        transfer(port, 8 * MiB)  # 127.0.0.1: no limit
        self.assertTrue(server.wait_bytes(8 * MiB))
        self.assertLess(time.monotonic() - t, 5)
        self.assertEqual(server.received.total, 8 * MiB)
        server.received = Samples()
        transfer(port, 3 * rate, source="127.0.0.2")
        self.assertTrue(server.wait_bytes(3 * rate))
        r = server.received.steady_rate(skip=rate * 1.25)
        self.assertLess(abs(r / rate - 1), TOLERANCE, "127.0.0.2: %.0f B/s" % r)
        print("plugin limit %d B/s: measured %.0f B/s (%+.1f %%)" % (rate, r, (r / rate - 1) * 100),
              file=sys.stderr)
        # What GOST's plugin is sent: the service scope once per refresh period (30 s), the
        # connection scope once per connection with the client's address as `src`.
        import json as _json
        with plugin.lock:
            bodies = [_json.loads(raw, object_pairs_hook=list) for _, _, raw in plugin.requests]
        self.assertTrue(all([k for k, _ in b] == ["service", "scope", "network", "addr", "client",
                                                   "src"] for b in bodies), bodies)
        bodies = [dict(b) for b in bodies]
        service = [b for b in bodies if b["scope"] == "service"]
        conn = [b for b in bodies if b["scope"] == "conn"]
        self.assertEqual(len(service), 1, service)
        self.assertEqual(service[0], {"service": "svc", "scope": "service", "network": "tcp",
                                      "addr": "", "client": "", "src": ""})
        self.assertGreaterEqual(len(conn), 2)  # the start-up probe's connection is asked too
        self.assertTrue(conn[-1]["src"].startswith("127.0.0.2:"), conn[-1])
        self.assertEqual((conn[-1]["service"], conn[-1]["network"]), ("svc", "tcp"))

    def test_a_connection_keeps_to_a_changed_answer(self):
        # GOST's connections consult the plugin's cached limiter on every read, which asks again
        # each refresh period: a running connection moves to the new limit within one period.
        from test_plugins import PluginServer
        fast, slow = 1 * MiB, 128 * KiB
        plugin = self.start_server(PluginServer())
        limit = {"rate": fast}

        def answer(path, req):
            if req.get("scope") == "conn" and req.get("src", "").startswith("127.0.0.2:"):
                return {"in": limit["rate"], "out": limit["rate"]}
            return {"in": 0, "out": 0}
        plugin.answer = answer
        server = self.start_server(RateServer(send_size=0))
        port = free_port()
        self.start_gost("-C", self.config(port, server.port, plugin.url("/lim"), refresh="1s"),
                        port=port)
        self.assertTrue(wait_until(lambda: plugin.count("/lim") >= 2))
        server.received = Samples()
        def send():  # ends with gost at the test's end
            try:
                transfer(port, 16 * MiB, source="127.0.0.2")
            except OSError:
                pass
        threading.Thread(target=send, daemon=True).start()
        self.assertTrue(server.wait_bytes(2 * MiB))  # the first burst and a second at `fast`
        limit["rate"] = slow
        flip = time.monotonic()
        time.sleep(4.5)  # at most one period (1 s) more at `fast`, a burst of `slow`, then `slow`
        with server.received.lock:
            pts = list(server.received.points)
        t1, t2 = flip + 2.0, flip + 4.5
        a = next(p for p in pts if p[0] >= t1)
        b = [p for p in pts if p[0] <= t2][-1]
        r = (b[1] - a[1]) / (b[0] - a[0])
        self.assertLess(abs(r / slow - 1), TOLERANCE * 1.5, "after the change: %.0f B/s" % r)
        asked = [b for b in map(dict, plugin.bodies("/lim"))
                 if b.get("scope") == "conn" and b.get("src", "").startswith("127.0.0.2:")]
        self.assertGreaterEqual(len(asked), 3, asked)  # at the start, then once a period
        print("plugin limit %d -> %d B/s: measured %.0f B/s after the change" % (fast, slow, r),
              file=sys.stderr)

    def test_client_scope_limits_a_users_tunnels_together(self):
        # A handler's `limiter` is GOST's client scope: asked with the authenticated user, one
        # budget shared by all that user's tunnels (go-gost/x limiter/traffic/cache keys it by
        # the client), another user unlimited.
        from test_plugins import PluginServer
        import base64
        rate = 256 * KiB
        plugin = self.start_server(PluginServer())

        def answer(path, req):
            if path == "/auth":  # the client id is the auther's answer (GOST's own authers
                # answer the user name too)
                ok = (req.get("username"), req.get("password")) in (("alice", "a"), ("bob", "b"))
                return {"ok": ok, "id": req.get("username")}
            if req.get("scope") == "client" and req.get("client") == "alice":
                return {"in": rate, "out": rate}
            return {"in": 0, "out": 0}
        plugin.answer = answer
        server = self.start_server(RateServer(send_size=0))
        port = free_port()
        cfg = self.write_file("gost.yaml", f"""
services:
- name: svc
  addr: 127.0.0.1:{port}
  handler: {{type: http, auther: au, limiter: lim}}
  listener: {{type: tcp}}
authers:
- name: au
  plugin: {{type: http, addr: "{plugin.url('/auth')}", timeout: 1s}}
limiters:
- name: lim
  plugin: {{type: http, addr: "{plugin.url('/lim')}", timeout: 1s}}
""")
        self.start_gost("-C", cfg, port=port)

        def tunnel(user, password, size):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            auth = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
            s.sendall(("CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                       "Proxy-Authorization: Basic %s\r\n\r\n" % (server.port, server.port, auth)
                       ).encode())
            head = b""
            while b"\r\n\r\n" not in head:
                d = s.recv(1)
                self.assertTrue(d, head)
                head += d
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
            try:
                pump(s, size, Samples())
            finally:
                s.close()

        t = time.monotonic()
        tunnel("bob", "b", 8 * MiB)  # unlimited
        self.assertTrue(server.wait_bytes(8 * MiB))
        self.assertLess(time.monotonic() - t, 5)
        server.received = Samples()
        # Two tunnels of alice at once share her one budget.
        threads = [threading.Thread(target=tunnel, args=("alice", "a", 2 * rate), daemon=True)
                   for _ in range(2)]
        for th in threads:
            th.start()
        self.assertTrue(server.wait_bytes(4 * rate))
        r = server.received.steady_rate(skip=rate * 1.25)
        self.assertLess(abs(r / rate - 1), TOLERANCE, "alice's two tunnels: %.0f B/s" % r)
        for th in threads:
            th.join(10)
        asked = [b for b in plugin.bodies("/lim") if dict(b).get("client") == "alice"]
        self.assertTrue(asked)
        self.assertEqual([k for k, _ in asked[0]],
                         ["service", "scope", "network", "addr", "client", "src"], asked[0])
        b = dict(asked[0])
        self.assertEqual((b["service"], b["scope"], b["network"], b["addr"]),
                         ("svc", "client", "tcp", "127.0.0.1:%d" % server.port), b)
        self.assertTrue(b["src"].startswith("127.0.0.1:"), b)
        print("client scope %d B/s over two tunnels: measured %.0f B/s (%+.1f %%)"
              % (rate, r, (r / rate - 1) * 100), file=sys.stderr)

    def test_failing_plugin_leaves_the_service_unlimited(self):
        from test_plugins import PluginServer
        server = self.start_server(RateServer(send_size=0))
        port = free_port()
        down = "http://127.0.0.1:%d/lim" % free_port()
        p = self.start_gost("-C", self.config(port, server.port, down), port=port)
        t = time.monotonic()
        transfer(port, 4 * MiB)
        self.assertTrue(server.wait_bytes(4 * MiB))
        self.assertLess(time.monotonic() - t, 5)
        text = p.stderr_text() + p.stdout_text()
        lines = [ln for ln in text.splitlines() if "limiter lim: plugin %s: " % down in ln]
        self.assertEqual(len(lines), 1, lines)
        # Garbage and a slow answer: the connection is served within the plugin's timeout.
        plugin = self.start_server(PluginServer())
        for mode in ("garbage", "slow"):
            plugin.mode = mode
            plugin.delay = 3.0
            port2 = free_port()
            p2 = self.start_gost("-C", self.config(port2, server.port, plugin.url("/lim")),
                                 port=port2)
            server.received = Samples()
            t = time.monotonic()
            transfer(port2, 1 * MiB)
            self.assertTrue(server.wait_bytes(1 * MiB))
            self.assertLess(time.monotonic() - t, 2 * 1.0 + 3, mode)  # two questions, 1 s each
            self.assertAlive(p2)
            p2.stop()

if __name__ == "__main__":
    gostlib.main()

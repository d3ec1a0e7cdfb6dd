"""Beyond GOST (ours, opt-in): a per-client connection limit that holds across a fleet through
Redis (app/fleet_climiter.hpp; README "running a fleet").

Two gost instances share one redis-server; each names a climiter `$$ 2` and counts its
connections in Redis (service metadata `climiter.redis`, `climiter.redis.ttl: 3s`):
- two connections from 127.0.0.1, one through each instance, use the client's limit: a third is
  closed right after accept on either instance (no byte), while 127.0.0.2 is still served;
- a closed connection frees its place for the other instance;
- an instance killed with SIGKILL while it holds a connection: its place counts until the ttl
  has passed, then the other instance admits the client again;
- with Redis stopped, connections are admitted (the local limit still applies) and the outage is
  logged once.

Run: /usr/bin/python3 tests/e2e/test_fleet_climiter.py <path-to-gost>
"""

import os
import shutil
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gostlib  # noqa: E402
from gostlib import LOOPBACK, EchoServer, free_ports, recv_exact, wait_until  # noqa: E402
from test_sources import RedisServer, redis_cmd  # noqa: E402

REDIS_SERVER = shutil.which("redis-server")
TTL = 3.0
KEY = "fleet-test:svc:ip:127.0.0.1"


def member_config(port, echo, redis_port):
    return f"""services:
- name: svc
  addr: {LOOPBACK}:{port}
  climiter: perclient
  handler: {{type: tcp}}
  listener: {{type: tcp}}
  forwarder: {{nodes: [{{name: t, addr: "{echo}"}}]}}
  metadata:
    climiter.redis: {LOOPBACK}:{redis_port}
    climiter.redis.key: fleet-test
    climiter.redis.ttl: 3s
climiters:
- name: perclient
  limits: ["$$ 2"]
"""


def open_conn(port, source="127.0.0.1"):
    return socket.create_connection((LOOPBACK, port), timeout=5, source_address=(source, 0))


def served(s, data=b"ping"):
    try:
        s.sendall(data)
        return recv_exact(s, len(data), timeout=5) == data
    except OSError:
        return False


def closed_without_data(s, timeout=5.0):
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def zcard(redis_port, key=KEY):
    r = redis_cmd(redis_port, "ZCARD", key)
    return int(r[1:].split(b"\r\n")[0])


@unittest.skipUnless(REDIS_SERVER, "redis-server not installed (scripts/setup.sh installs it)")
class FleetClimiterTest(gostlib.GostTestCase):
    def setUp(self):
        self.redis = RedisServer()
        self.addCleanup(self.redis.close)
        self.echo = self.start_server(EchoServer())
        self.pa, self.pb = free_ports(2)
        self.a = self.start_gost("-C", self.write_file("a.yaml", member_config(
            self.pa, self.echo.addr, self.redis.port)), port=self.pa, name="gost-a")
        self.b = self.start_gost("-C", self.write_file("b.yaml", member_config(
            self.pb, self.echo.addr, self.redis.port)), port=self.pb, name="gost-b")
        # The start-up probes' places are taken and given back asynchronously: wait until none
        # has been counted for a while.
        quiet = []

        def settled():
            quiet.append(zcard(self.redis.port) == 0)
            return len(quiet) >= 5 and all(quiet[-5:])
        self.assertTrue(wait_until(settled, timeout=10, interval=0.1))

    def conn(self, port, source="127.0.0.1"):
        s = open_conn(port, source)
        self.addCleanup(s.close)
        return s

    def test_limit_holds_across_the_fleet_and_a_crash_ages_out(self):
        c1 = self.conn(self.pa)
        self.assertTrue(served(c1))
        c2 = self.conn(self.pb)
        self.assertTrue(served(c2))
        self.assertEqual(zcard(self.redis.port), 2)
        # A third from 127.0.0.1 on either instance: closed after accept (each holds one only).
        for port in (self.pa, self.pb):
            self.assertTrue(closed_without_data(self.conn(port)), port)
        # Another client is served.
        self.assertTrue(served(self.conn(self.pb, "127.0.0.2")))
        # A closed connection frees its place for the other instance.
        c1.close()
        self.assertTrue(wait_until(lambda: zcard(self.redis.port) == 1, timeout=5))
        c3 = self.conn(self.pb)
        self.assertTrue(served(c3))
        c3.close()
        self.assertTrue(wait_until(lambda: zcard(self.redis.port) == 1, timeout=5))
        # Instance A dies holding a place: it counts until the ttl has passed.
        c4 = self.conn(self.pa)
        self.assertTrue(served(c4))
        self.a.proc.kill()
        self.a.proc.wait(timeout=5)
        self.a.expected_exit = True
        self.assertTrue(closed_without_data(self.conn(self.pb)))
        t0 = time.monotonic()
        ok = wait_until(lambda: served(self.conn(self.pb)), timeout=TTL + 3, interval=0.5)
        self.assertTrue(ok, "the dead instance's place never aged out")
        self.assertGreater(time.monotonic() - t0, TTL / 2)
        self.assertAlive(self.b)

    def test_long_connections_stay_counted(self):
        # Held longer than the ttl: the instance refreshes its places, so they still count.
        c1 = self.conn(self.pa)
        c2 = self.conn(self.pb)
        self.assertTrue(served(c1) and served(c2))
        time.sleep(TTL * 1.7)
        self.assertEqual(zcard(self.redis.port), 2)
        self.assertTrue(closed_without_data(self.conn(self.pa)))
        self.assertTrue(served(c1) and served(c2))

    def test_redis_down_admits_and_logs_once(self):
        self.redis.stop()
        # The local limit (2 per instance) still applies; the fleet's is not checked.
        conns = [self.conn(self.pa) for _ in range(2)] + [self.conn(self.pb) for _ in range(2)]
        self.assertTrue(all(served(s) for s in conns))
        self.assertTrue(closed_without_data(self.conn(self.pa)))
        text = self.a.stderr_text() + self.a.stdout_text()
        lines = [ln for ln in text.splitlines()
                 if "climiter.redis %s:%d: " % (LOOPBACK, self.redis.port) in ln]
        self.assertEqual(len(lines), 1, lines)


if __name__ == "__main__":
    gostlib.main()

"""A fleet: two gost instances behind Debian's haproxy sharing users and admissions from one Redis
(issue 17 §5).

haproxy (mode tcp, `send-proxy-v2`) fronts each instance; both read their auther (a Redis hash) and
their admission blacklist (a Redis set) with `reload: 1s`, and take the client address from the
PROXY header (service metadata `proxyProtocol`). Checked with curl through haproxy:
- a user added in Redis logs in through both instances within a few reload periods;
- an admission entry added in Redis refuses a client from 127.0.0.2 through haproxy on both,
  while 127.0.0.1 still passes (haproxy itself always connects from 127.0.0.1: only the header's
  address can tell them apart);
- with Redis stopped, both keep their last good users and admissions (GOST would drop them at its
  next reload and let the blacklisted client in).

Run: /usr/bin/python3 tests/e2e/test_fleet.py <path-to-gost>
"""

import os
import shutil
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gostlib  # noqa: E402
from gostlib import HAPROXY, LOOPBACK, OriginServer, curl, free_port, wait_port, wait_until  # noqa: E402
from test_sources import RedisServer, redis_cmd  # noqa: E402

REDIS_SERVER = shutil.which("redis-server")
CHANGE_WAIT = 8.0  # a Redis change must be seen within a few reload periods


def member_config(port, redis_port):
    return f"""services:
- name: proxy
  addr: {LOOPBACK}:{port}
  admission: fleet-admissions
  handler:
    type: http
    auther: fleet-users
  listener:
    type: tcp
  metadata:
    proxyProtocol: 2
authers:
- name: fleet-users
  reload: 1s
  redis:
    addr: {LOOPBACK}:{redis_port}
    key: fleet:users
admissions:
- name: fleet-admissions
  reload: 1s
  redis:
    addr: {LOOPBACK}:{redis_port}
    key: fleet:admissions
"""


@unittest.skipUnless(HAPROXY, "haproxy not installed (scripts/setup.sh installs it)")
@unittest.skipUnless(REDIS_SERVER, "redis-server not installed (scripts/setup.sh installs it)")
class FleetTest(gostlib.GostTestCase):
    def setUp(self):
        self.origin = self.start_server(OriginServer())
        self.redis = RedisServer()
        self.addCleanup(self.redis.close)
        self.assertIn(b":1", redis_cmd(self.redis.port, "HSET", "fleet:users", "alice", "a-pw"))
        self.members = []
        for _ in range(2):
            port = free_port()
            path = self.write_file("member-%d.yaml" % port, member_config(port, self.redis.port))
            self.members.append((self.start_gost("-C", path, port=port), port))
        self.fronts = [free_port() for _ in self.members]
        self.start_haproxy()

    def start_haproxy(self):
        gostlib.start_haproxy(self, [(front, port, "send-proxy-v2")
                                     for front, (_, port) in zip(self.fronts, self.members)])

    def fetch(self, front, user, password, source=LOOPBACK):
        """What curl gets through haproxy's frontend: the HTTP code ("000": no answer)."""
        r = curl(self.origin.url, proxy="http://%s:%d" % (LOOPBACK, front),
                 extra=("-U", "%s:%s" % (user, password), "--interface", source), timeout=10)
        if r.http_code == "200":
            self.assertEqual(r.body, self.origin.body)
        return r.http_code

    def expect_all(self, user, password, code, source=LOOPBACK, timeout=CHANGE_WAIT):
        for front in self.fronts:
            got = []
            ok = wait_until(lambda: got.append(self.fetch(front, user, password, source)) or
                            got[-1] == code, timeout=timeout, interval=0.25)
            self.assertTrue(ok, "through :%d %s@%s expected %s, got %s" %
                            (front, user, source, code, got[-3:]))

    def test_users_and_admissions_follow_redis_on_every_member(self):
        self.expect_all("alice", "a-pw", "200")
        self.expect_all("bob", "b-pw", "407", timeout=1)
        # A user added in Redis logs in through both members within the reload period.
        self.assertIn(b":1", redis_cmd(self.redis.port, "HSET", "fleet:users", "bob", "b-pw"))
        self.expect_all("bob", "b-pw", "200")
        self.expect_all("alice", "a-pw", "200", source="127.0.0.2")
        # An admission entry added in Redis refuses 127.0.0.2 (seen only in the PROXY header) on
        # both members; 127.0.0.1 still passes.
        self.assertIn(b":1", redis_cmd(self.redis.port, "SADD", "fleet:admissions", "127.0.0.2"))
        self.expect_all("alice", "a-pw", "000", source="127.0.0.2")
        self.expect_all("alice", "a-pw", "200")
        # Redis goes away: both members keep their last good users and admissions.
        self.redis.stop()
        wait_until(lambda: all("redis" in (proc.stderr_text() + proc.stdout_text()).lower()
                               and "keeping the last good data" in
                               (proc.stderr_text() + proc.stdout_text())
                               for proc, _ in self.members), timeout=CHANGE_WAIT)
        for proc, _ in self.members:
            self.assertIn("keeping the last good data", proc.stderr_text() + proc.stdout_text())
        for _ in range(3):
            self.assertEqual(self.fetch(self.fronts[0], "bob", "b-pw"), "200")
            self.assertEqual(self.fetch(self.fronts[1], "bob", "b-pw"), "200")
            self.assertEqual(self.fetch(self.fronts[0], "alice", "a-pw", "127.0.0.2"), "000")
            self.assertEqual(self.fetch(self.fronts[1], "alice", "a-pw", "127.0.0.2"), "000")


if __name__ == "__main__":
    gostlib.main()

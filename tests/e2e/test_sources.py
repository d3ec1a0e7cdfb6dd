"""End-to-end tests of dynamic sources and HTTP plugins (issue 17 §3).

Spec: docs/ARCHITECTURE.md "Sources", docs/PROTOCOLS.md "sources". An auther's users come from a
file, a Redis hash or an HTTP body (GOST's formats), re-read every `reload` period; a source that
cannot be read keeps its last good data and its error is logged once per outage (and its recovery
once). An auther `plugin` of type http is asked with a JSON POST; anything but a 200 with
{"ok":true} refuses, and a plugin slower than its timeout refuses without holding the service up. Admissions,
bypasses and hosts take the same sources (a blacklisted client stays out while its source is
down: GOST would let it in).

Each test starts a real gost with a YAML config (-C), a real redis-server on a free port, Python
HTTP servers and temporary files; what a client sees is checked with curl through the HTTP proxy
(200 with the origin's body, or 407).

Run: /usr/bin/python3 tests/e2e/test_sources.py <path-to-gost>
"""

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gostlib  # noqa: E402
from gostlib import LOOPBACK, OriginServer, curl, free_port, wait_port, wait_until  # noqa: E402

RELOAD = 1  # seconds: the shortest period GOST allows
CHANGE_WAIT = 6.0  # a change must be seen within a few periods
REDIS_SERVER = shutil.which("redis-server")


def config(port, auther_yaml):
    return ("services:\n"
            "- name: proxy\n"
            "  addr: 127.0.0.1:%d\n"
            "  handler:\n"
            "    type: http\n"
            "    auther: users\n"
            "  listener:\n"
            "    type: tcp\n"
            "authers:\n"
            "- name: users\n" % port) + auther_yaml


def status(proxy_port, origin, user, password):
    r = curl(origin.url, proxy="http://%s:%d" % (LOOPBACK, proxy_port),
             extra=("-U", "%s:%s" % (user, password)), timeout=10)
    if r.http_code == "200":
        assert r.body == origin.body, r
    return r.http_code


def error_lines(proc, what):
    return [ln for ln in proc.stderr_text().splitlines() + proc.stdout_text().splitlines()
            if ("%s loader:" % what) in ln and "recovered" not in ln]


def recovered_lines(proc, what):
    return [ln for ln in proc.stderr_text().splitlines() + proc.stdout_text().splitlines()
            if ("%s loader: recovered" % what) in ln]


# ---- Redis -------------------------------------------------------------------------------

def redis_cmd(port, *args, timeout=5.0):
    """One command over RESP; returns the raw reply bytes."""
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as s:
        s.sendall(out)
        return s.recv(65536)


class RedisServer:
    def __init__(self, port=None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="gost-e2e-redis-")
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", LOOPBACK, "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port(self.port, 10, proc=self.proc):
            raise RuntimeError("redis-server did not start on %d" % self.port)
        wait_until(lambda: redis_cmd(self.port, "PING") == b"+PONG\r\n", timeout=5)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- HTTP source / plugin servers ---------------------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _send(self, code, body):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        o = self.server.owner
        with o.lock:
            o.gets += 1
            code, body = o.code, o.body
        self._send(code, body)

    def do_POST(self):
        o = self.server.owner
        n = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(n)
        with o.lock:
            o.posts.append((dict(self.headers), raw))
            delay, code = o.delay, o.code
        if delay:
            time.sleep(delay)
        try:
            req = json.loads(raw)
        except ValueError:
            req = {}
        ok = o.answer(req)
        self._send(code, json.dumps(ok).encode())


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class HttpSource:
    def __init__(self, body=b"", code=200):
        self.lock = threading.Lock()
        self.body, self.code, self.delay = body, code, 0
        self.gets, self.posts = 0, []
        self.answer = lambda req: {"ok": False}
        self.server = _Server((LOOPBACK, 0), _Handler)
        self.server.owner = self
        self.port = self.server.server_address[1]
        self.url = "http://%s:%d/users" % (LOOPBACK, self.port)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                         daemon=True).start()

    def set(self, **kw):
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, v)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class HostileRedis:
    """A TCP server answering every connection with `reply` (a hostile Redis)."""

    def __init__(self, reply):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.reply = reply
        self.connections = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            try:
                c.settimeout(2)
                c.recv(65536)
                c.sendall(self.reply)
                time.sleep(0.2)
            except OSError:
                pass
            finally:
                c.close()

    def close(self):
        self.sock.close()


class SourcesTest(gostlib.GostTestCase):
    def setUp(self):
        self.origin = self.start_server(OriginServer())
        self.dir = tempfile.mkdtemp(prefix="gost-e2e-src-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def start(self, auther_yaml):
        port = free_port()
        path = self.write_file("gost.yaml", config(port, auther_yaml))
        proc = self.start_gost("-C", path, port=port)
        return proc, port

    def expect(self, port, user, password, code, timeout=CHANGE_WAIT):
        got = []
        ok = wait_until(lambda: got.append(status(port, self.origin, user, password)) or
                        got[-1] == code, timeout=timeout, interval=0.2)
        self.assertTrue(ok, "%s:%s expected %s, got %s" % (user, password, code, got[-3:]))

    # ---- file ----

    def test_file_users_reload_missing_and_back(self):
        users = os.path.join(self.dir, "users.txt")
        with open(users, "w") as f:
            f.write("# GOST's format\nalice secret\n")
        p, port = self.start("  reload: %ds\n  file:\n    path: %s\n" % (RELOAD, users))
        self.assertEqual(status(port, self.origin, "alice", "secret"), "200")
        self.assertEqual(status(port, self.origin, "alice", "wrong"), "407")
        self.assertEqual(status(port, self.origin, "bob", "pw"), "407")
        with open(users, "a") as f:
            f.write("bob\tpw\n")
        self.expect(port, "bob", "pw", "200")

        os.unlink(users)  # the outage: both users stay (GOST would drop them)
        wait_until(lambda: error_lines(p, "file"), timeout=CHANGE_WAIT)
        time.sleep(3 * RELOAD + 0.5)
        self.assertEqual(status(port, self.origin, "alice", "secret"), "200")
        self.assertEqual(status(port, self.origin, "bob", "pw"), "200")
        self.assertEqual(len(error_lines(p, "file")), 1, error_lines(p, "file"))

        with open(users, "w") as f:
            f.write("carol c\n")
        self.expect(port, "carol", "c", "200")
        self.expect(port, "alice", "secret", "407")  # the file is the truth again
        self.assertEqual(len(recovered_lines(p, "file")), 1)
        self.assertEqual(len(error_lines(p, "file")), 1)
        self.assertAlive(p)

    def test_file_malformed_lines(self):
        users = os.path.join(self.dir, "users.txt")
        with open(users, "wb") as f:
            f.write(b"\x00\xff\xfe garbage\n" + b"x" * 200000 + b"\n   \n#c d\n\tdave   d pw \r\n")
        p, port = self.start("  file:\n    path: %s\n" % users)
        self.assertEqual(status(port, self.origin, "dave", "d pw"), "200")
        self.assertEqual(status(port, self.origin, "#c", "d"), "407")
        self.assertAlive(p)

    def test_file_missing_at_start_rejects_then_loads(self):
        users = os.path.join(self.dir, "later.txt")
        p, port = self.start("  reload: %ds\n  file:\n    path: %s\n" % (RELOAD, users))
        self.assertEqual(status(port, self.origin, "erin", "e"), "407")
        with open(users, "w") as f:
            f.write("erin e\n")
        self.expect(port, "erin", "e", "200")
        self.assertEqual(len(error_lines(p, "file")), 1, error_lines(p, "file"))

    # ---- redis ----

    @unittest.skipUnless(REDIS_SERVER, "redis-server is not installed (scripts/setup.sh)")
    def test_redis_hash_down_and_back(self):
        r = RedisServer()
        self.addCleanup(r.close)
        self.assertEqual(redis_cmd(r.port, "HSET", "users", "alice", "secret"), b":1\r\n")
        p, port = self.start("  reload: %ds\n  redis:\n    addr: 127.0.0.1:%d\n    key: users\n"
                             % (RELOAD, r.port))
        self.assertEqual(status(port, self.origin, "alice", "secret"), "200")
        redis_cmd(r.port, "HSET", "users", "bob", "pw")
        self.expect(port, "bob", "pw", "200")

        r.stop()  # Redis down: the last good users stay, one error line for the outage
        self.assertTrue(wait_until(lambda: error_lines(p, "redis"), timeout=CHANGE_WAIT))
        time.sleep(3 * RELOAD + 0.5)
        self.assertEqual(status(port, self.origin, "bob", "pw"), "200")
        self.assertEqual(len(error_lines(p, "redis")), 1, error_lines(p, "redis"))

        r.start()  # back, empty (no persistence): carol only
        redis_cmd(r.port, "HSET", "users", "carol", "c")
        self.expect(port, "carol", "c", "200")
        self.expect(port, "bob", "pw", "407")
        self.assertEqual(len(recovered_lines(p, "redis")), 1)
        self.assertAlive(p)

    @unittest.skipUnless(REDIS_SERVER, "redis-server is not installed (scripts/setup.sh)")
    def test_redis_db_auth_and_default_key(self):
        r = RedisServer()
        self.addCleanup(r.close)
        self.assertEqual(redis_cmd(r.port, "CONFIG", "SET", "requirepass", "rpw"), b"+OK\r\n")
        with socket.create_connection((LOOPBACK, r.port), timeout=5) as s:
            s.sendall(b"AUTH rpw\r\nSELECT 3\r\nHSET gost frank f\r\n")
            time.sleep(0.3)
            self.assertIn(b":1", s.recv(4096))
        p, port = self.start("  redis:\n    addr: 127.0.0.1:%d\n    db: 3\n    password: rpw\n"
                             % r.port)
        self.assertEqual(status(port, self.origin, "frank", "f"), "200")
        # A wrong password: the AUTH error is the source's error, the service stays up.
        p2, port2 = self.start("  redis:\n    addr: 127.0.0.1:%d\n    db: 3\n    password: bad\n"
                               % r.port)
        self.assertEqual(status(port2, self.origin, "frank", "f"), "407")
        self.assertTrue(wait_until(lambda: error_lines(p2, "redis"), timeout=3))
        self.assertIn("WRONGPASS", "\n".join(error_lines(p2, "redis")))

    def test_redis_hostile_reply(self):
        for reply in (b"*2000000000\r\n", b"$99999999999\r\n", b"?junk\r\n", b"*1\r\n" * 10):
            h = HostileRedis(reply)
            self.addCleanup(h.close)
            p, port = self.start("  redis:\n    addr: 127.0.0.1:%d\n" % h.port)
            self.assertEqual(status(port, self.origin, "x", "y"), "407")
            self.assertTrue(wait_until(lambda: error_lines(p, "redis"), timeout=3), reply)
            self.assertAlive(p)

    # ---- http ----

    def test_http_source_500_keeps_last_good(self):
        src = HttpSource(b"alice secret\n")
        self.addCleanup(src.close)
        p, port = self.start("  reload: %ds\n  http:\n    url: %s\n    timeout: 2s\n"
                             % (RELOAD, src.url))
        self.assertEqual(status(port, self.origin, "alice", "secret"), "200")
        src.set(body=b"alice secret\nbob pw\n")
        self.expect(port, "bob", "pw", "200")
        src.set(code=500, body=b"carol c\n")  # only a 200 counts
        self.assertTrue(wait_until(lambda: error_lines(p, "http"), timeout=CHANGE_WAIT))
        time.sleep(3 * RELOAD + 0.5)
        self.assertEqual(status(port, self.origin, "bob", "pw"), "200")
        self.assertEqual(status(port, self.origin, "carol", "c"), "407")
        self.assertEqual(len(error_lines(p, "http")), 1, error_lines(p, "http"))
        src.set(code=200)
        self.expect(port, "carol", "c", "200")
        self.expect(port, "bob", "pw", "407")

    def test_http_source_slow_times_out(self):
        # A server that accepts and never answers.
        silent = socket.socket()
        silent.bind((LOOPBACK, 0))
        silent.listen(8)
        self.addCleanup(silent.close)
        t0 = time.monotonic()
        p, port = self.start("  http:\n    url: http://127.0.0.1:%d/\n    timeout: 1s\n"
                             % silent.getsockname()[1])
        self.assertLess(time.monotonic() - t0, 8)
        self.assertEqual(status(port, self.origin, "alice", "secret"), "407")
        self.assertTrue(wait_until(lambda: error_lines(p, "http"), timeout=3))
        self.assertIn("timeout", "\n".join(error_lines(p, "http")))

    # ---- admissions, bypasses, hosts ----

    def start_controls(self, service_keys, controls_yaml):
        port = free_port()
        path = self.write_file("gost.yaml", (
            "services:\n"
            "- name: proxy\n"
            "  addr: 127.0.0.1:%d\n"
            "%s"
            "  handler:\n"
            "    type: http\n"
            "  listener:\n"
            "    type: tcp\n" % (port, service_keys)) + controls_yaml)
        return self.start_gost("-C", path, port=port), port

    def plain(self, port, url=None):
        r = curl(url or self.origin.url, proxy="http://%s:%d" % (LOOPBACK, port), timeout=10)
        return r.http_code

    def test_admission_file_blacklist_reloads_and_keeps_last_good(self):
        deny = os.path.join(self.dir, "deny.txt")
        with open(deny, "w") as f:
            f.write("10.9.9.9  # someone else\n")
        p, port = self.start_controls("  admission: deny\n",
                                      "admissions:\n- name: deny\n  reload: %ds\n"
                                      "  file:\n    path: %s\n" % (RELOAD, deny))
        self.assertEqual(self.plain(port), "200")
        with open(deny, "a") as f:
            f.write("127.0.0.1\n")
        # Refused: closed before any byte (curl: empty reply or reset, code 000).
        self.assertTrue(wait_until(lambda: self.plain(port) == "000", timeout=CHANGE_WAIT))
        os.unlink(deny)  # GOST would now let the blacklisted client in (fail open); we keep it out
        self.assertTrue(wait_until(lambda: error_lines(p, "file"), timeout=CHANGE_WAIT))
        time.sleep(2 * RELOAD + 0.5)
        self.assertEqual(self.plain(port), "000")
        self.assertEqual(len(error_lines(p, "file")), 1)
        with open(deny, "w") as f:
            f.write("# nobody\n")
        self.assertTrue(wait_until(lambda: self.plain(port) == "200", timeout=CHANGE_WAIT))

    @unittest.skipUnless(REDIS_SERVER, "redis-server is not installed (scripts/setup.sh)")
    def test_bypass_redis_set(self):
        r = RedisServer()
        self.addCleanup(r.close)
        p, port = self.start_controls("  bypass: deny\n",
                                      "bypasses:\n- name: deny\n  reload: %ds\n"
                                      "  redis:\n    addr: 127.0.0.1:%d\n    key: deny\n"
                                      % (RELOAD, r.port))
        self.assertEqual(self.plain(port), "200")
        redis_cmd(r.port, "SADD", "deny", "127.0.0.1")
        self.assertTrue(wait_until(lambda: self.plain(port) == "403", timeout=CHANGE_WAIT))
        r.stop()  # down: the target stays bypassed
        self.assertTrue(wait_until(lambda: error_lines(p, "redis"), timeout=CHANGE_WAIT))
        self.assertEqual(self.plain(port), "403")

    def test_hosts_http_source(self):
        src = HttpSource(b"127.0.0.1 origin.test  # the origin\n")
        self.addCleanup(src.close)
        p, port = self.start_controls("  hosts: names\n",
                                      "hosts:\n- name: names\n  http:\n    url: %s\n" % src.url)
        url = "http://origin.test:%d/" % self.origin.port
        self.assertEqual(self.plain(port, url), "200")

    def test_climiter_plugin_refused(self):
        # Admission, bypass, hosts and traffic limiter plugins: tests/e2e/test_plugins.py,
        # test_limiters.py.
        port = free_port()
        path = self.write_file("gost.yaml", (
            "services:\n- name: proxy\n  addr: 127.0.0.1:%d\n  climiter: l\n"
            "  handler:\n    type: http\n"
            "climiters:\n- name: l\n  plugin:\n    type: http\n    addr: http://127.0.0.1:1/\n"
            % port))
        r = gostlib.run_gost(["-C", path], timeout=15)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"climiter l: plugin: GOST has no plugin for this limiter", r.stderr + r.stdout)

    def test_api_and_metrics_auther_from_a_file(self):
        # @api's and @metrics' `auther` is the running auther, sources included: a user that
        # exists only in the file gets in, one added to the file gets in after the reload.
        users = os.path.join(self.dir, "users.txt")
        with open(users, "w") as f:
            f.write("alice secret\n")
        pa, pm, ps = gostlib.free_ports(3)
        path = self.write_file("gost.yaml", """
api: {addr: "127.0.0.1:%d", auther: fileusers}
metrics: {addr: "127.0.0.1:%d", auther: fileusers}
authers:
  - name: fileusers
    reload: %ds
    file: {path: %s}
services: [{name: s, addr: "127.0.0.1:%d", handler: {type: http}}]
""" % (pa, pm, RELOAD, users, ps))
        p = self.start_gost("-C", path, ports=[pa, pm, ps])
        urls = ("http://127.0.0.1:%d/config" % pa, "http://127.0.0.1:%d/metrics" % pm)
        for url in urls:
            self.assertEqual(gostlib.curl(url).http_code, "401", url)
            self.assertEqual(gostlib.curl(url, extra=["-u", "alice:wrong"]).http_code, "401", url)
            r = gostlib.curl(url, extra=["-u", "alice:secret"])
            self.assertEqual(r.http_code, "200", (url, r))
            self.assertEqual(gostlib.curl(url, extra=["-u", "bob:pw"]).http_code, "401", url)
        with open(users, "a") as f:
            f.write("bob pw\n")
        for url in urls:
            ok = wait_until(lambda: gostlib.curl(url, extra=["-u", "bob:pw"]).http_code == "200",
                            timeout=CHANGE_WAIT, interval=0.3)
            self.assertTrue(ok, url)
        self.assertAlive(p)

    # ---- plugin ----

    def test_http_plugin(self):
        plug = HttpSource()
        self.addCleanup(plug.close)
        plug.answer = lambda req: ({"ok": True, "id": "id-" + req["username"]}
                                   if req.get("password") == "pw" else {"ok": False})
        p, port = self.start("  plugin:\n    type: http\n    addr: %s\n    timeout: 2s\n"
                             "    token: tok123\n" % plug.url)
        self.assertEqual(status(port, self.origin, "gina", "pw"), "200")
        self.assertEqual(status(port, self.origin, "gina", "nope"), "407")
        headers, raw = plug.posts[0]
        req = json.loads(raw)
        self.assertEqual(sorted(req), ["client", "password", "service", "username"])
        self.assertEqual((req["service"], req["username"], req["password"]), ("proxy", "gina", "pw"))
        self.assertTrue(req["client"].startswith("127.0.0.1:"), req)
        self.assertEqual(headers.get("Content-Type"), "application/json")
        self.assertEqual(headers.get("Authorization"), "Bearer tok123")
        self.assertIn("id-gina", p.stderr_text() + p.stdout_text())
        # Anything but a 200 refuses, whatever the body says.
        plug.set(code=500)
        plug.answer = lambda req: {"ok": True}
        self.assertEqual(status(port, self.origin, "gina", "pw"), "407")

    def test_http_plugin_slower_than_timeout(self):
        plug = HttpSource()
        self.addCleanup(plug.close)
        plug.answer = lambda req: {"ok": True}
        plug.set(delay=3)
        p, port = self.start("  plugin:\n    type: http\n    addr: %s\n    timeout: 500ms\n"
                             % plug.url)
        t0 = time.monotonic()
        self.assertEqual(status(port, self.origin, "h", "h"), "407")
        self.assertLess(time.monotonic() - t0, 2.5)
        plug.set(delay=0)
        self.assertEqual(status(port, self.origin, "h", "h"), "200")  # the service stayed up
        self.assertAlive(p)

    def test_grpc_plugin_refused(self):
        port = free_port()
        path = self.write_file("gost.yaml", config(
            port, "  plugin:\n    type: grpc\n    addr: 127.0.0.1:1\n"))
        r = gostlib.run_gost(["-C", path], timeout=15)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"grpc", r.stderr + r.stdout)

    def test_https_source_refused(self):
        port = free_port()
        path = self.write_file("gost.yaml", config(
            port, "  http:\n    url: https://127.0.0.1:1/users\n"))
        r = gostlib.run_gost(["-C", path], timeout=15)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"https", r.stderr + r.stdout)


if __name__ == "__main__":
    gostlib.main()

"""End-to-end tests of configuration reload and GOST's web API (issue 10 items 2 and 4;
docs/PROTOCOLS.md "observability: web API", "observability: reload").

- SIGHUP re-reads the -C file and applies only the difference: added, changed and removed
  services take effect while an 8 MiB tunnel on an unchanged service keeps flowing (checksums
  compared both ways); a reload that fails part-way (a busy port) changes nothing at all; a
  changed service never refuses a connection while it is rebound; -R reloads periodically.
- The web API: Basic auth (401 + WWW-Authenticate), GOST's envelopes, codes and golden
  exchanges, CRUD on services, chains, hops and authers with a tunnel open on another service
  that must survive, GET /config as JSON and YAML, POST /config (save), POST /config/reload,
  pathPrefix, CORS, access log, and bad input (malformed JSON, oversized bodies, garbage).

Run: /usr/bin/python3 tests/e2e/test_reload_api.py <path-to-gost>
"""

import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gostlib  # noqa: E402
from gostlib import (EchoServer, GostTestCase, OriginServer, basic, connect, curl,  # noqa: E402
                     free_ports, wait_port)

LOOPBACK = "127.0.0.1"
MB = 1024 * 1024


def service_yaml(name, port, handler="http", extra=""):
    return ("  - name: %s\n    addr: %s:%d\n    handler:\n      type: %s\n%s"
            "    listener:\n      type: tcp\n" % (name, LOOPBACK, port, handler, extra))


def config_yaml(*services, tail=""):
    return "services:\n" + "".join(services) + tail


def wait_for(predicate, timeout=10.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def refused(port):
    try:
        socket.create_connection((LOOPBACK, port), timeout=2).close()
        return False
    except OSError:
        return True


class Tunnel:
    """A CONNECT tunnel through an http proxy service to an echo server that streams `size`
    random bytes up in small paced chunks (so that it spans what the test does meanwhile) and
    reads the echo back; result() compares the checksums of both directions."""

    def __init__(self, proxy_port, target, size=8 * MB, pace=0.004, hold=False):
        self.sock = connect(proxy_port, timeout=60)
        self.sock.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise AssertionError("proxy closed before answering CONNECT")
            head += chunk
        if b" 200 " not in head.split(b"\r\n")[0] + b" ":
            raise AssertionError("CONNECT refused: %r" % head)
        self.payload = os.urandom(size)
        self.half = threading.Event()
        # hold=True: the sender stops after the first quarter (`half` set) until resume(): the
        # tunnel is then certainly open and unfinished across whatever the test does meanwhile
        self.go_on = threading.Event()
        if not hold:
            self.go_on.set()
        self.sent_all = threading.Event()
        self.received = hashlib.sha256()
        self.received_len = 0
        self.error = None
        self.sender = threading.Thread(target=self._send, args=(pace,), daemon=True)
        self.receiver = threading.Thread(target=self._recv, daemon=True)
        self.receiver.start()
        self.sender.start()

    def _send(self, pace):
        try:
            view = memoryview(self.payload)
            for off in range(0, len(view), 64 * 1024):
                self.sock.sendall(view[off:off + 64 * 1024])
                if off >= len(view) // 4:
                    self.half.set()
                    if not self.go_on.wait(120):
                        raise OSError("held tunnel never resumed")
                time.sleep(pace)
            self.sent_all.set()
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            self.error = "send: %r" % e
            self.half.set()

    def _recv(self):
        try:
            while True:
                data = self.sock.recv(256 * 1024)
                if not data:
                    break
                self.received.update(data)
                self.received_len += len(data)
        except OSError as e:
            self.error = "recv: %r" % e

    def running(self):
        """Both directions still open and nothing failed yet."""
        return (self.error is None and self.sender.is_alive() and self.receiver.is_alive()
                and not self.sent_all.is_set())

    def resume(self):
        self.go_on.set()

    def result(self, timeout=60):
        self.go_on.set()
        self.sender.join(timeout)
        self.receiver.join(timeout)
        self.sock.close()
        return (self.error, self.received_len, self.received.hexdigest() ==
                hashlib.sha256(self.payload).hexdigest())


class ReloadTest(GostTestCase):
    def setUp(self):
        self.origin = self.start_server(OriginServer())
        self.echo = self.start_server(EchoServer())

    def fetch(self, port, auth=None):
        url = "http://%s/x" % self.origin.addr
        proxy = "http://%s%s:%d" % (auth + "@" if auth else "", LOOPBACK, port)
        return curl(url, proxy=proxy).http_code

    def sighup(self, p, marker="config reloaded", count=1):
        before = p.stderr_text().count(marker)
        os.kill(p.pid, signal.SIGHUP)
        return wait_for(lambda: p.stderr_text().count(marker) >= before + count)

    def test_sighup_applies_the_difference_and_keeps_tunnels(self):
        pa, pb, pc, pd = free_ports(4)
        path = self.write_file("gost.yaml", config_yaml(
            service_yaml("a", pa), service_yaml("b", pb), service_yaml("c", pc)))
        p = self.start_gost("-C", path, ports=[pa, pb, pc])
        tunnel = Tunnel(pa, self.echo.addr, hold=True)
        self.assertTrue(tunnel.half.wait(30), tunnel.error)
        self.assertTrue(tunnel.running(), tunnel.error)
        with open(path, "w") as f:  # a unchanged, b now with auth, c removed, d added
            f.write(config_yaml(
                service_yaml("a", pa),
                service_yaml("b", pb, extra="      auth:\n        username: u\n"
                                             "        password: p\n"),
                service_yaml("d", pd)))
        self.assertTrue(self.sighup(p), p.stderr_text()[-3000:])
        self.assertEqual(self.fetch(pb), "407")
        self.assertEqual(self.fetch(pb, "u:p"), "200")
        self.assertEqual(self.fetch(pd), "200")
        self.assertTrue(wait_for(lambda: refused(pc), 5), "removed service c still accepts")
        # the tunnel was open, unfinished (held after its first quarter), when the reload
        # applied and still is: it lived through the reload rather than ending before it
        self.assertTrue(tunnel.running(), "the tunnel ended across the reload: %r" % tunnel.error)
        tunnel.resume()
        err, n, same = tunnel.result()
        self.assertIsNone(err)
        self.assertEqual(n, 8 * MB)
        self.assertTrue(same, "tunnel data corrupted across the reload")
        self.assertEqual(self.fetch(pa), "200")
        self.assertAlive(p)

    def test_failed_reload_changes_nothing(self):
        pa, pb, pc, busy = free_ports(4)
        holder = socket.socket()
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind((LOOPBACK, busy))
        holder.listen(1)
        self.addCleanup(holder.close)
        path = self.write_file("gost.yaml", config_yaml(
            service_yaml("a", pa), service_yaml("b", pb), service_yaml("c", pc)))
        p = self.start_gost("-C", path, ports=[pa, pb, pc])
        with open(path, "w") as f:  # b changed, c removed, d on a busy port: all refused
            f.write(config_yaml(
                service_yaml("a", pa),
                service_yaml("b", pb, extra="      auth:\n        username: u\n"
                                             "        password: p\n"),
                service_yaml("d", busy)))
        self.assertTrue(self.sighup(p, marker='"level":"error"'), p.stderr_text()[-3000:])
        self.assertNotIn("config reloaded", p.stderr_text())
        self.assertIn("in use", p.stderr_text())
        self.assertEqual(self.fetch(pb), "200")  # still without auth
        self.assertEqual(self.fetch(pc), "200")  # still there
        self.assertEqual(self.fetch(pa), "200")
        # A bad key is refused the same way, and a good file afterwards applies.
        with open(path, "w") as f:
            f.write(config_yaml(service_yaml("a", pa, handler="nosuch")))
        self.assertTrue(self.sighup(p, marker='"level":"error"', count=1))
        self.assertEqual(self.fetch(pa), "200")
        with open(path, "w") as f:
            f.write(config_yaml(service_yaml("a", pa)))
        self.assertTrue(self.sighup(p))
        self.assertTrue(wait_for(lambda: refused(pb) and refused(pc), 5))
        self.assertEqual(self.fetch(pa), "200")

    def hammer(self, port, threads=3):
        """CONNECT tunnels to the echo server through `port`, one after another in each of
        `threads` threads, until stop() is called. Returns (stop, failures, attempts)."""
        done = threading.Event()
        failures, attempts = [], [0]

        def run():
            while not done.is_set():
                try:
                    s = socket.create_connection((LOOPBACK, port), timeout=5)
                    s.settimeout(5)
                    s.sendall(("CONNECT %s HTTP/1.1\r\nHost: x\r\n\r\n" %
                               self.echo.addr).encode())
                    head = s.recv(64)
                    if not head.startswith(b"HTTP/1.1 200"):
                        failures.append(head)
                    else:
                        s.sendall(b"ping")
                        if s.recv(4) != b"ping":
                            failures.append("no echo")
                    s.close()
                except OSError as e:
                    failures.append(repr(e))
                attempts[0] += 1

        workers = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
        for t in workers:
            t.start()

        def stop():
            done.set()
            self.assertEqual(gostlib.join_all(workers, 15), [], "a hammer thread hangs")

        return stop, failures, attempts

    def test_changed_service_never_refuses_while_rebound(self):
        (pb,) = free_ports(1)
        path = self.write_file("gost.yaml", config_yaml(service_yaml("b", pb)))
        p = self.start_gost("-C", path, port=pb)
        stop, failures, attempts = self.hammer(pb)
        listening = "listening on %s:%d/tcp" % (LOOPBACK, pb)
        self.assertEqual(p.stderr_text().count(listening), 1, p.stderr_text()[-2000:])
        for i in range(6):
            with open(path, "w") as f:
                f.write(config_yaml(service_yaml(
                    "b", pb, extra="      metadata:\n        round: %d\n" % i)))
            self.assertTrue(self.sighup(p), p.stderr_text()[-2000:])
            # the changed service was rebuilt (a new listener: its "listening on" line) ...
            self.assertTrue(wait_for(lambda: p.stderr_text().count(listening) >= i + 2, 5),
                            "round %d: service b was not rebuilt\n%s" % (i, p.stderr_text()[-2000:]))
            # ... and the hammer goes on against the new one before the next round
            mark = attempts[0]
            self.assertTrue(wait_for(lambda: attempts[0] >= mark + 6, 10),
                            "round %d: the hammer stalled" % i)
        stop()
        self.assertEqual(p.stderr_text().count(listening), 7, p.stderr_text()[-2000:])
        self.assertGreater(attempts[0], 50)
        self.assertEqual(failures, [], "%d of %d attempts failed: %r"
                         % (len(failures), attempts[0], failures[:5]))

    def test_reloads_back_to_back_never_refuse(self):
        # Each reload replaces the service while the previous one's listeners are still in their
        # grace (not closed yet): the port must go on answering through every one of them, and
        # the last configuration (auth) is the one that serves in the end.
        (pb,) = free_ports(1)
        path = self.write_file("gost.yaml", config_yaml(service_yaml("b", pb)))
        p = self.start_gost("-C", path, port=pb)
        stop, failures, attempts = self.hammer(pb, threads=4)
        rounds = 15
        for i in range(rounds):
            with open(path, "w") as f:
                f.write(config_yaml(service_yaml(
                    "b", pb, extra="      metadata:\n        round: %d\n" % i)))
            self.assertTrue(self.sighup(p), p.stderr_text()[-2000:])
        mark = attempts[0]
        self.assertTrue(wait_for(lambda: attempts[0] >= mark + 20, 10), "the hammer stalled")
        stop()
        listening = "listening on %s:%d/tcp" % (LOOPBACK, pb)
        self.assertEqual(p.stderr_text().count(listening), rounds + 1, p.stderr_text()[-2000:])
        self.assertEqual(failures, [], "%d of %d attempts failed: %r"
                         % (len(failures), attempts[0], failures[:5]))
        with open(path, "w") as f:
            f.write(config_yaml(service_yaml(
                "b", pb, extra="      auth:\n        username: u\n        password: p\n")))
        self.assertTrue(self.sighup(p), p.stderr_text()[-2000:])
        self.assertEqual(self.fetch(pb), "407")
        self.assertEqual(self.fetch(pb, "u:p"), "200")
        self.assertAlive(p)

    def test_periodic_reload(self):
        pa, pb = free_ports(2)
        path = self.write_file("gost.yaml", config_yaml(service_yaml("a", pa)))
        p = self.start_gost("-C", path, "-R", "1s", port=pa)
        with open(path, "w") as f:
            f.write(config_yaml(service_yaml("a", pa), service_yaml("b", pb)))
        self.assertTrue(wait_port(pb, 5, proc=p.proc), p.stderr_text()[-2000:])
        self.assertEqual(self.fetch(pb), "200")

    def test_sighup_rebinds_metrics_and_api(self):
        pa, pm, papi = free_ports(3)
        path = self.write_file("gost.yaml", config_yaml(service_yaml("a", pa)))
        p = self.start_gost("-C", path, port=pa)
        with open(path, "w") as f:
            f.write(config_yaml(service_yaml("a", pa), tail=(
                "api:\n  addr: %s:%d\nmetrics:\n  addr: %s:%d\n" % (LOOPBACK, papi, LOOPBACK, pm))))
        self.assertTrue(self.sighup(p))
        self.assertTrue(wait_port(pm, 5) and wait_port(papi, 5))
        status, _, body = api(papi, "GET", "/config/services")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["data"]["count"], 1)
        with open(path, "w") as f:
            f.write(config_yaml(service_yaml("a", pa)))
        self.assertTrue(self.sighup(p))
        self.assertTrue(wait_for(lambda: refused(pm) and refused(papi), 5))


def api(port, method, path, body=None, auth=None, headers=None, timeout=10):
    """(status, headers dict (lower-case names), body bytes) of one API request."""
    c = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    h = dict(headers or {})
    if auth:
        h["Authorization"] = basic(*auth)
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


class ApiTest(GostTestCase):
    AUTH = ("admin", "secret")

    def setUp(self):
        self.origin = self.start_server(OriginServer())
        self.echo = self.start_server(EchoServer())

    def start(self, *extra, query="", config=None):
        pa, self.papi = free_ports(2)
        self.pa = pa
        args = ["-api", "admin:secret@%s:%d%s" % (LOOPBACK, self.papi, query)]
        if config:
            args = ["-C", config] + args
        else:
            args = ["-L", "http://%s:%d" % (LOOPBACK, pa)] + args
        return self.start_gost(*(args + list(extra)), ports=[self.papi] + ([] if config else [pa]))

    def call(self, method, path, body=None, auth=AUTH, **kw):
        status, headers, raw = api(self.papi, method, path, body, auth, **kw)
        return status, headers, raw

    def fetch(self, port, auth=None):
        proxy = "http://%s%s:%d" % (auth + "@" if auth else "", LOOPBACK, port)
        return curl("http://%s/x" % self.origin.addr, proxy=proxy).http_code

    def test_auth(self):
        self.start()
        for auth in (None, ("admin", "wrong"), ("nobody", "secret")):
            status, headers, body = self.call("GET", "/config", auth=auth)
            self.assertEqual(status, 401, auth)
            self.assertEqual(body, b'{"code":401,"msg":"Unauthorized"}')
            self.assertEqual(headers.get("www-authenticate"), "Basic")
            self.assertEqual(headers.get("content-type"), "application/json; charset=utf-8")
        status, _, _ = self.call("GET", "/config")
        self.assertEqual(status, 200)

    def test_golden_exchanges(self):
        # docs/PROTOCOLS.md "observability: web API"
        self.start()
        (p1,) = free_ports(1)
        s1 = {"name": "s1", "addr": "%s:%d" % (LOOPBACK, p1), "handler": {"type": "http"},
              "listener": {"type": "tcp"}}
        self.assertEqual(self.call("POST", "/config/services", s1)[::2], (200, b'{"msg":"OK"}'))
        self.assertEqual(self.call("POST", "/config/services", s1)[::2],
                         (400, b'{"code":40002,"msg":"service s1 already exists"}'))
        self.assertEqual(self.call("POST", "/config/services", {"addr": ":8082"})[::2],
                         (400, b'{"code":40001,"msg":"service name is required"}'))
        status, _, body = self.call("POST", "/config/services",
                                    {"name": "s2", "addr": "%s:%d" % (LOOPBACK, p1)})
        self.assertEqual(status, 500)
        msg = json.loads(body)
        self.assertEqual(msg["code"], 40003)
        self.assertTrue(msg["msg"].startswith("create service s2 failed: listen tcp "), msg)
        self.assertIn("in use", msg["msg"])
        self.assertEqual(self.call("PUT", "/config/chains/nope", {})[::2],
                         (400, b'{"code":40004,"msg":"chain nope not found"}'))
        self.assertEqual(self.call("DELETE", "/config/services/nope")[::2],
                         (400, b'{"code":40004,"msg":"service nope not found"}'))
        self.assertEqual(self.call("GET", "/config/services/nope")[::2], (200, b"{}"))
        self.assertEqual(self.call("POST", "/config/authers",
                                   {"name": "a1", "auths": [{"username": "u", "password": "p"}]})[0],
                         200)
        self.assertEqual(self.call("GET", "/config/authers")[::2], (200, (
            b'{"data":{"count":1,"list":[{"name":"a1","auths":[{"username":"u","password":"p"}]}]}}')))
        self.assertEqual(self.call("GET", "/config/chains")[::2],
                         (200, b'{"data":{"count":0,"list":null}}'))
        self.assertEqual(self.call("GET", "/config/bypasses")[::2],
                         (200, b'{"data":{"count":0,"list":null}}'))
        self.assertEqual(self.call("POST", "/config/bypasses", {"name": "b", "matchers": ["a.test"]})[::2],
                         (200, b'{"msg":"OK"}'))
        self.assertEqual(self.call("GET", "/config/bypasses")[::2],
                         (200, b'{"data":{"count":1,"list":[{"name":"b","matchers":["a.test"]}]}}'))
        self.assertEqual(self.call("POST", "/config/limiters",
                                   {"name": "l", "limits": ["$ 1MB 2MB"]})[::2],
                         (200, b'{"msg":"OK"}'))
        self.assertEqual(self.call("GET", "/config/limiters")[::2],
                         (200, b'{"data":{"count":1,"list":[{"name":"l","limits":["$ 1MB 2MB"]}]}}'))
        status, _, body = self.call("POST", "/config/climiters",
                                    {"name": "c", "limits": ["$ 1"], "reload": "10s",
                                     "plugin": {"type": "http", "addr": "http://127.0.0.1:1/"}})
        self.assertEqual(status, 500)
        self.assertIn(b"climiter c: plugin: GOST has no plugin for this limiter", body)
        self.assertEqual(self.call("GET", "/config/resolvers")[::2],
                         (200, b'{"data":{"count":0,"list":null}}'))
        status, _, body = self.call("POST", "/config/resolvers", {"name": "r"})
        self.assertEqual(status, 400)
        self.assertIn(b"not supported", body)
        self.assertEqual(self.fetch(p1), "200")

    def test_service_crud_keeps_other_tunnels(self):
        self.start()
        tunnel = Tunnel(self.pa, self.echo.addr, pace=0.006, hold=True)
        self.assertTrue(tunnel.half.wait(30), tunnel.error)
        (p1,) = free_ports(1)
        addr = "%s:%d" % (LOOPBACK, p1)
        self.assertEqual(self.call("POST", "/config/services",
                                   {"name": "s1", "addr": addr, "handler": {"type": "http"}})[0], 200)
        self.assertEqual(self.fetch(p1), "200")
        self.assertEqual(self.call("PUT", "/config/services/s1", {
            "name": "ignored", "addr": addr,
            "handler": {"type": "http", "auth": {"username": "u", "password": "p"}}})[0], 200)
        self.assertEqual(self.fetch(p1), "407")
        self.assertEqual(self.fetch(p1, "u:p"), "200")
        status, _, body = self.call("GET", "/config/services/s1")
        got = json.loads(body)["data"]
        self.assertEqual(got["name"], "s1")  # the name comes from the URL
        self.assertEqual(got["handler"]["auth"], {"username": "u", "password": "p"})
        self.assertEqual(got["status"]["state"], "running")
        self.assertEqual(self.call("DELETE", "/config/services/s1")[::2], (200, b'{"msg":"OK"}'))
        self.assertTrue(wait_for(lambda: refused(p1), 5))
        # the tunnel on the other service was open, unfinished, through all of it
        self.assertTrue(tunnel.running(), "the tunnel ended across the CRUD: %r" % tunnel.error)
        tunnel.resume()
        err, n, same = tunnel.result()
        self.assertIsNone(err)
        self.assertEqual(n, 8 * MB)
        self.assertTrue(same)
        status, _, body = self.call("GET", "/config/services")
        self.assertEqual([s["name"] for s in json.loads(body)["data"]["list"]], ["service-0"])

    def test_chains_hops_authers(self):
        self.start()
        (p1, p2) = free_ports(2)
        # An auther, then a service using it; changing the auther rebinds that service.
        self.assertEqual(self.call("POST", "/config/authers", {
            "name": "a1", "auths": [{"username": "u", "password": "p"}]})[0], 200)
        self.assertEqual(self.call("POST", "/config/services", {
            "name": "s1", "addr": "%s:%d" % (LOOPBACK, p1),
            "handler": {"type": "http", "auther": "a1"}})[0], 200)
        self.assertEqual(self.fetch(p1), "407")
        self.assertEqual(self.fetch(p1, "u:p"), "200")
        self.assertEqual(self.call("PUT", "/config/authers/a1", {
            "auths": [{"username": "u", "password": "q"}]})[0], 200)
        self.assertEqual(self.fetch(p1, "u:p"), "407")
        self.assertEqual(self.fetch(p1, "u:q"), "200")
        # A top-level hop through the first service, a chain referring to it, a service using
        # the chain: requests go through service-0 (its log shows them).
        self.assertEqual(self.call("POST", "/config/hops", {
            "name": "h1", "nodes": [{"name": "n1", "addr": "%s:%d" % (LOOPBACK, self.pa),
                                     "connector": {"type": "http"}}]})[0], 200)
        self.assertEqual(self.call("POST", "/config/chains", {
            "name": "c1", "hops": [{"name": "h1"}]})[0], 200)
        self.assertEqual(self.call("POST", "/config/services", {
            "name": "s2", "addr": "%s:%d" % (LOOPBACK, p2),
            "handler": {"type": "http", "chain": "c1"}})[0], 200)
        before = self._gost_procs[0].stderr_text().count('"service":"service-0"')
        self.assertEqual(self.fetch(p2), "200")
        self.assertGreater(self._gost_procs[0].stderr_text().count('"service":"service-0"'), before)
        # Deleting a chain a service uses is refused (GOST would silently go direct).
        status, _, body = self.call("DELETE", "/config/chains/c1")
        self.assertEqual(status, 500, body)
        self.assertEqual(json.loads(body)["code"], 40003)
        self.assertEqual(self.fetch(p2), "200")
        # A hop change goes through to the chain's users: a node that refuses → 503.
        self.assertEqual(self.call("PUT", "/config/hops/h1", {
            "nodes": [{"name": "n1", "addr": "%s:1" % LOOPBACK}]})[0], 200)
        self.assertEqual(self.fetch(p2), "503")
        status, _, body = self.call("GET", "/config/hops/h1")
        self.assertEqual(json.loads(body)["data"]["nodes"][0]["addr"], "%s:1" % LOOPBACK)

    def test_whole_config_save_and_reload(self):
        (pa, pb) = free_ports(2)
        d = tempfile.mkdtemp(prefix="gost-e2e-api-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", d]))
        path = os.path.join(d, "gost.yaml")
        with open(path, "w") as f:
            f.write(config_yaml(service_yaml("a", pa)))
        self.start(config=path)
        wait_port(pa, 5)
        status, headers, body = self.call("GET", "/config")
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "application/json; charset=utf-8")
        self.assertTrue(body.endswith(b"}\n"))
        cfg = json.loads(body)
        self.assertEqual(cfg["services"][0]["name"], "a")
        self.assertEqual(cfg["services"][0]["status"]["state"], "running")
        self.assertEqual(cfg["api"]["addr"], "%s:%d" % (LOOPBACK, self.papi))
        status, headers, body = self.call("GET", "/config?format=yaml")
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/x-yaml"))
        self.assertIn(b"services:\n  - name: a\n", body)
        # Save to an explicit path, then (no path) over the -C file; both load again.
        out = os.path.join(d, "out.json")
        self.assertEqual(self.call("POST", "/config?format=json&path=" + out)[0], 200)
        with open(out) as f:
            self.assertEqual(json.load(f)["services"][0]["addr"], "%s:%d" % (LOOPBACK, pa))
        self.assertEqual(self.call("POST", "/config/services", {
            "name": "b", "addr": "%s:%d" % (LOOPBACK, pb), "handler": {"type": "http"}})[0], 200)
        self.assertEqual(self.call("POST", "/config")[0], 200)
        cp = gostlib.run_gost(["-C", path, "-O", "json"], timeout=10)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual([s["name"] for s in json.loads(cp.stdout)["services"]], ["a", "b"])
        # /config/reload re-reads the file: edit it, reload; a broken file changes nothing.
        with open(path, "w") as f:
            f.write(config_yaml(service_yaml("b", pb)))
        self.assertEqual(self.call("POST", "/config/reload")[::2], (200, b'{"msg":"OK"}'))
        self.assertTrue(wait_for(lambda: refused(pa), 5))
        self.assertEqual(self.fetch(pb), "200")
        with open(path, "w") as f:
            f.write("services: [{name: x, handler: {type: nosuch}}]\n")
        status, _, body = self.call("POST", "/config/reload")
        self.assertEqual(status, 400)
        self.assertEqual(json.loads(body)["code"], 40001)
        self.assertIn(b"nosuch", body)
        self.assertEqual(self.fetch(pb), "200")
        self.assertTrue(wait_port(self.papi, 2))  # the API itself is untouched by reloads

    def test_path_prefix_cors_redirects_accesslog(self):
        p = self.start(query="?pathPrefix=/api&accesslog=true")
        self.assertEqual(self.call("GET", "/config")[0], 404)
        self.assertEqual(self.call("GET", "/api/config/services")[0], 200)
        self.assertEqual(self.call("GET", "/api/nothing")[0], 404)
        status, headers, body = self.call("OPTIONS", "/api/config", auth=None,
                                          headers={"Origin": "http://elsewhere"})
        self.assertEqual((status, body), (204, b""))
        self.assertEqual(headers["access-control-allow-origin"], "*")
        self.assertEqual(headers["access-control-allow-methods"], "GET,POST,PUT,DELETE,OPTIONS")
        status, headers, _ = self.call("GET", "/api/config/services",
                                       headers={"Origin": "http://elsewhere"})
        self.assertEqual((status, headers.get("access-control-allow-origin")), (200, "*"))
        status, headers, _ = self.call("GET", "/api/config/services")
        self.assertNotIn("access-control-allow-origin", headers)
        self.assertEqual(self.call("OPTIONS", "/api/config", auth=None)[0], 404)
        status, headers, _ = self.call("GET", "/api/config/services/")
        self.assertEqual((status, headers["location"]), (301, "/api/config/services"))
        self.assertTrue(wait_for(lambda: '"kind":"api"' in p.stderr_text(), 5))
        self.assertRegex(p.stderr_text(), r'\| 200 \| +[0-9.]+[µnm]?s \| +127\.0\.0\.1 \| GET ')

    def test_bad_input(self):
        p = self.start()
        status, _, body = self.call("POST", "/config/services", "{not json")
        self.assertEqual((status, json.loads(body)["code"]), (400, 40001))
        status, _, body = self.call("POST", "/config/services", {"name": "x", "resolver": "r"})
        self.assertEqual(status, 400)
        self.assertIn(b"resolver", body)
        status, _, body = self.call("POST", "/config/services", {"name": "x", "bypass": "b"})
        self.assertEqual(status, 500)
        self.assertIn(b'bypass \\"b\\" is not defined', body)
        status, _, body = self.call("POST", "/config/services",
                                    {"name": "x", "handler": {"type": "nosuch"}})
        self.assertEqual(status, 500)
        self.assertIn(b"nosuch", body)
        s = connect(self.papi)  # a body over the limit is refused from its Content-Length
        s.sendall(b"POST /config/services HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                  % (2 * MB))
        self.assertTrue(gostlib.recv_exact(s, 12).startswith(b"HTTP/1.1 413"))
        s.close()
        for junk in (b"\x16\x03\x01\x00\x05hello", b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 5000,
                     os.urandom(4096), b"\r\n\r\n"):
            s = connect(self.papi)
            try:
                s.sendall(junk)
                s.settimeout(5)
                while s.recv(4096):
                    pass
            except OSError:
                pass
            s.close()
        self.assertEqual(self.call("GET", "/config/services")[0], 200)
        status, _, body = self.call("GET", "/config/services")
        self.assertEqual(json.loads(body)["data"]["count"], 1)  # nothing half-created
        self.assertAlive(p)


if __name__ == "__main__":
    gostlib.main()

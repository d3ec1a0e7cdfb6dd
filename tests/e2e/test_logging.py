"""End-to-end tests of the `log:` / `loggers:` sections (docs/PROTOCOLS.md "observability: logging";
issue 10 item 3), on the real binary started with `gost -C file.yaml`:

- a file output in the text format at level info: GOST's text layout, no debug lines, nothing on
  stderr; the same in JSON at level debug (keys sorted, debug lines present);
- rotation (`rotation: {maxSize: 1, maxBackups: 2}`): backups named gost-<UTC time>.log, at most 2,
  none over 1 MB; with `compress: true` the backups are valid gzip;
- named loggers: a service with `logger:`/`loggers:` writes to both, each with its own level and
  format and `logger=<name>`; the default logger does not get the service's lines;
- an output that cannot be opened: a warning and the lines on stderr instead;
- SIGHUP with a changed `log.output`: later lines go to the new file.

Run: /usr/bin/python3 tests/e2e/test_logging.py <path-to-gost>
"""

import gzip
import json
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gostlib  # noqa: E402
from gostlib import (EchoServer, GostTestCase, connect, free_port, recv_exact,  # noqa: E402
                     recv_until_close)

LOOPBACK = "127.0.0.1"
TEXT_LINE = re.compile(r'^time="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)" '
                       r'level=(trace|debug|info|warning|error|fatal)( msg=\S.*)?( \S+=.*)?$')
JSON_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$")
BACKUP = re.compile(r"^gost-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}\.log(\.gz)?$")
LEVELS = {"trace", "debug", "info", "warning", "error", "fatal"}
MB = 1 << 20


def tunnel(proxy_port, target, payload=b"ping"):
    """One CONNECT tunnel to an echo server and back."""
    s = connect(proxy_port)
    try:
        s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += recv_exact(s, 1)
        assert head.startswith(b"HTTP/1.1 200"), head
        s.sendall(payload)
        assert recv_exact(s, len(payload)) == payload
        s.shutdown(socket.SHUT_WR)
        recv_until_close(s)
    finally:
        s.close()


def big_request(proxy_port, pad):
    """A CONNECT to a closed port with a `pad`-byte header: one large trace line (the request
    head) and a refused dial."""
    s = connect(proxy_port)
    try:
        s.sendall(("CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\nX-Pad: %s\r\n\r\n"
                   % ("p" * pad)).encode())
        recv_until_close(s)
    finally:
        s.close()


def read_lines(path):
    with open(path, "rb") as f:
        data = f.read().decode("utf-8")
    assert data == "" or data.endswith("\n"), "%s: last line unterminated" % path
    return data.splitlines()


def contains(path, needle):
    """Whether the file exists and holds `needle`."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return needle in f.read()
    except FileNotFoundError:
        return False


def wait_for(pred, timeout=10.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


class LoggingTest(GostTestCase):
    def setUp(self):
        self.echo = self.start_server(EchoServer())
        self.dir = tempfile.mkdtemp(prefix="gost-e2e-log-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def config(self, port, log=None, loggers=None, service_extra="", name="svc-log"):
        text = ("services:\n"
                "- name: %s\n"
                "  addr: 127.0.0.1:%d\n"
                "  handler:\n"
                "    type: http\n"
                "  listener:\n"
                "    type: tcp\n" % (name, port))
        text += service_extra
        if log is not None:
            text += "log:\n" + log
        if loggers is not None:
            text += "loggers:\n" + loggers
        return text

    def start(self, text, port):
        path = self.write_file("gost.yaml", text)
        return self.start_gost("-C", path, port=port), path

    def stop(self, p):
        p.stop()

    # ---- formats and levels -------------------------------------------------------------------

    def test_text_file_at_info(self):
        port = free_port()
        out = os.path.join(self.dir, "sub", "dir", "gost.log")  # parents created
        p, _ = self.start(self.config(port, log="  output: %s\n  format: text\n  level: info\n"
                                      % out), port)
        tunnel(port, self.echo.addr)
        self.assertTrue(wait_for(lambda: contains(out, " >< ")))
        self.stop(p)
        lines = read_lines(out)
        for line in lines:
            self.assertRegex(line, TEXT_LINE)
            self.assertNotIn("level=debug", line)
            self.assertNotIn("level=trace", line)
        listening = [l for l in lines if 'msg="listening on 127.0.0.1:%d/tcp"' % port in l]
        self.assertEqual(len(listening), 1, lines)
        self.assertIn(" handler=http", listening[0])
        self.assertIn(" kind=service", listening[0])
        self.assertIn(" listener=tcp", listening[0])
        self.assertIn(" service=svc-log", listening[0])
        # Fields after msg in key order.
        keys = re.findall(r" ([A-Za-z.]+)=", listening[0].split(" msg=", 1)[1])
        self.assertEqual(keys, sorted(keys))
        # The end of the connection: Go-style duration, byte counts as numbers.
        end = [l for l in lines if " >< " in l]
        self.assertTrue(end, lines)
        self.assertRegex(end[-1], r' duration=("?[0-9.]+(ns|µs|ms|s)"?|[0-9hms.]+) ')
        self.assertRegex(end[-1], r" inputBytes=\d+ ")
        # Nothing on stderr: the file took every line.
        self.assertEqual(p.stderr_text().strip(), "")

    def test_json_file_at_debug(self):
        port = free_port()
        out = os.path.join(self.dir, "gost.json.log")
        p, _ = self.start(self.config(port, log="  output: %s\n  level: debug\n" % out), port)
        tunnel(port, self.echo.addr)
        self.assertTrue(wait_for(lambda: contains(out, " >< ")))
        self.stop(p)
        levels = set()
        for line in read_lines(out):
            pairs = json.loads(line, object_pairs_hook=lambda kv: kv)
            keys = [k for k, _ in pairs]
            self.assertEqual(keys, sorted(keys), line)
            obj = dict(pairs)
            self.assertIn(obj["level"], LEVELS)
            self.assertRegex(obj["time"], JSON_TIME)
            if " >< " in obj["msg"]:
                self.assertIsInstance(obj["duration"], int)
                self.assertIsInstance(obj["inputBytes"], int)
            levels.add(obj["level"])
        self.assertIn("debug", levels)
        self.assertIn("info", levels)

    def test_error_level_keeps_quiet(self):
        port = free_port()
        out = os.path.join(self.dir, "quiet.log")
        p, _ = self.start(self.config(port, log="  output: %s\n  level: error\n" % out), port)
        tunnel(port, self.echo.addr)
        big_request(port, 10)  # a refused dial: an error line
        self.assertTrue(wait_for(lambda: os.path.exists(out) and os.path.getsize(out) > 0))
        self.stop(p)
        for line in read_lines(out):
            self.assertIn(json.loads(line)["level"], ("error", "fatal"))

    # ---- rotation -----------------------------------------------------------------------------

    def rotate(self, rotation, requests):
        port = free_port()
        out = os.path.join(self.dir, "rot", "gost.log")
        p, _ = self.start(self.config(
            port, log="  output: %s\n  format: text\n  level: trace\n  rotation:\n%s"
            % (out, rotation)), port)
        for _ in range(requests):
            big_request(port, 16000)  # ≥ 16 kB of trace output each
        return p, out

    def backups(self, out):
        return sorted(n for n in os.listdir(os.path.dirname(out)) if n != "gost.log")

    def test_rotation_keeps_max_backups(self):
        # ~3.5 MB of lines into 1 MB files: three rotations, the oldest backup removed.
        p, out = self.rotate("    maxSize: 1\n    maxBackups: 2\n", 220)
        self.assertTrue(wait_for(lambda: len(self.backups(out)) == 2, 10),
                        self.backups(out))
        self.stop(p)
        names = self.backups(out)
        self.assertEqual(len(names), 2, names)
        d = os.path.dirname(out)
        for n in names:
            self.assertRegex(n, BACKUP)
            self.assertFalse(n.endswith(".gz"))
            size = os.path.getsize(os.path.join(d, n))
            self.assertLessEqual(size, MB)
            self.assertGreater(size, MB - 64 * 1024)
        # UTC timestamps of the rotation, close to now.
        now = time.gmtime()
        self.assertTrue(names[-1].startswith("gost-%04d-%02d-%02d" % now[:3]), names)
        for n in names + ["gost.log"]:
            for line in read_lines(os.path.join(d, n)):
                self.assertTrue(line.startswith('time="'), line[:200])

    def test_rotation_compresses_backups(self):
        p, out = self.rotate("    maxSize: 1\n    compress: true\n", 90)
        d = os.path.dirname(out)
        self.assertTrue(wait_for(
            lambda: self.backups(out) and all(n.endswith(".gz") for n in self.backups(out)), 10),
            self.backups(out))
        self.stop(p)
        names = self.backups(out)
        self.assertGreaterEqual(len(names), 1)
        for n in names:
            self.assertRegex(n, BACKUP)
            with gzip.open(os.path.join(d, n), "rb") as f:
                data = f.read().decode("utf-8")
            self.assertTrue(data.endswith("\n"))
            self.assertGreater(len(data), MB - 64 * 1024)
            self.assertLessEqual(len(data), MB)
            for line in data.splitlines():
                self.assertTrue(line.startswith('time="'), line[:200])

    # ---- named loggers ------------------------------------------------------------------------

    def test_named_loggers_fan_out(self):
        port = free_port()
        default = os.path.join(self.dir, "default.log")
        a = os.path.join(self.dir, "a.log")
        b = os.path.join(self.dir, "b.log")
        loggers = ("- name: a\n"
                   "  log:\n"
                   "    output: %s\n"
                   "    format: text\n"
                   "    level: debug\n"
                   "- name: b\n"
                   "  log:\n"
                   "    output: %s\n"
                   "    level: info\n" % (a, b))
        p, _ = self.start(self.config(port, log="  output: %s\n" % default, loggers=loggers,
                                      service_extra="  logger: a\n  loggers: [b, unknown]\n"),
                          port)
        tunnel(port, self.echo.addr)
        self.assertTrue(wait_for(lambda: contains(b, " >< ")))
        self.stop(p)
        a_lines = read_lines(a)
        b_lines = [json.loads(l) for l in read_lines(b)]
        for line in a_lines:
            self.assertRegex(line, TEXT_LINE)
            self.assertIn(" logger=a ", line + " ")
        for obj in b_lines:
            self.assertEqual(obj["logger"], "b")
            self.assertNotIn(obj["level"], ("debug", "trace"))
        self.assertTrue(any("level=debug" in l for l in a_lines), a_lines)
        self.assertTrue(any(o["msg"] == "listening on 127.0.0.1:%d/tcp" % port for o in b_lines))
        self.assertTrue(any('msg="listening on 127.0.0.1:%d/tcp"' % port in l for l in a_lines))
        # The same info lines in both.
        a_info = sum(1 for l in a_lines if " level=info " in l)
        self.assertEqual(a_info, len([o for o in b_lines if o["level"] == "info"]))
        # The default logger has none of the service's lines.
        if os.path.exists(default):
            for line in read_lines(default):
                self.assertNotEqual(json.loads(line).get("service"), "svc-log", line)

    # ---- errors and reload --------------------------------------------------------------------

    def test_unopenable_output_falls_back_to_stderr(self):
        port = free_port()
        blocker = os.path.join(self.dir, "a-file")
        open(blocker, "w").close()
        out = os.path.join(blocker, "gost.log")  # parent is a regular file
        p, _ = self.start(self.config(port, log="  output: %s\n  format: text\n" % out), port)
        tunnel(port, self.echo.addr)
        self.assertTrue(wait_for(lambda: " >< " in p.stderr_text()))
        self.stop(p)
        err = p.stderr_text().splitlines()
        self.assertTrue(any(l.startswith('time="') and " level=warning " in l and out in l
                            and "not a directory" in l for l in err), err)
        self.assertTrue(any('msg="listening on 127.0.0.1:%d/tcp"' % port in l for l in err), err)

    def test_sighup_switches_output(self):
        port = free_port()
        first = os.path.join(self.dir, "first.log")
        second = os.path.join(self.dir, "second.log")
        p, path = self.start(self.config(port, log="  output: %s\n" % first), port)
        tunnel(port, self.echo.addr)
        self.assertTrue(wait_for(lambda: contains(first, " >< ")))
        with open(path, "w") as f:
            f.write(self.config(port, log="  output: %s\n  format: text\n" % second))
        os.kill(p.pid, signal.SIGHUP)
        self.assertTrue(wait_for(lambda: contains(second, "config reloaded")),
                        p.diagnostics())
        before = len(read_lines(first))
        tunnel(port, self.echo.addr)
        self.assertTrue(wait_for(lambda: contains(second, " >< ")), p.diagnostics())
        self.stop(p)
        self.assertEqual(len(read_lines(first)), before)
        for line in read_lines(second):
            self.assertRegex(line, TEXT_LINE)


if __name__ == "__main__":
    gostlib.main()

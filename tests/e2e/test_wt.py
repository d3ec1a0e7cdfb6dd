"""WebTransport data channel `wt` (docs/PROTOCOLS.md "wt"): listener and dialer on our QUIC
engine.

Our client against our server: relay+wt, socks5+wt and http+wt with curl, 8 MiB random both ways
with checksums and half-close, 100 concurrent tunnels over one session per worker, a server
restart (SIGTERM and SIGKILL) with the client reconnecting, bad option values. GOST 3.2.6's
answers: another path 404 (an extended CONNECT, from tests/tools/wt_probe), a plain GET of the path
500 and GET / 404 "404 page not found" (Debian's gtlsclient, an independent HTTP/3 client); the
newer drafts' `:protocol webtransport-h3` is a session too, another `:protocol` 500. Bad
WebTransport streams (a DATA frame first, a truncated preamble, an unknown session ID) close that
stream only: the session goes on (wt_probe). Chromium headless as an independent WebTransport
client (serverCertificateHashes), echoing streams through a `tcp+wt` forward service.

Run: /usr/bin/python3 tests/e2e/test_wt.py <path-to-gost>
"""

import base64
import hashlib
import http.server
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gostlib  # noqa: E402
import test_h3  # noqa: E402
import udplib  # noqa: E402
from gostlib import curl, free_port, temp_dir  # noqa: E402

WORKERS = os.cpu_count() or 1


def probe_path():
    """tests/tools/wt_probe, built next to the gost binary's tests/ directory."""
    return os.path.join(os.path.dirname(gostlib.GOST_BIN), "tests", "wt_probe")


class WtTestBase(test_h3.H3TestBase):

    def probe(self, udp, path, protocol="webtransport"):
        exe = probe_path()
        if not os.access(exe, os.X_OK):
            self.skipTest("tests/tools/wt_probe is not built (%s)" % exe)
        r = subprocess.run([exe, "127.0.0.1:%d" % udp, path, protocol], capture_output=True,
                           timeout=60, env=dict(os.environ, HOME=self.home))
        lines = {}
        for line in r.stdout.decode(errors="replace").splitlines():
            k, _, v = line.partition(" ")
            lines[k] = v
        return lines, r


YAML_SERVER = """
log:
  level: trace
services:
  - name: wt-server
    addr: 127.0.0.1:{udp}
    handler:
      type: relay
    listener:
      type: wt
      metadata:
        path: /t
"""

YAML_CLIENT = """
services:
  - name: front
    addr: 127.0.0.1:{front}
    handler:
      type: http
      chain: chain-0
    listener:
      type: tcp
chains:
  - name: chain-0
    hops:
      - name: hop-0
        nodes:
          - name: node-0
            addr: 127.0.0.1:{udp}
            connector:
              type: relay
            dialer:
              type: wt
              metadata:
                wt.path: /t
                host: tunnel.example:9999
                header:
                  X-Test: "yes"
"""


class WtPairTest(WtTestBase):

    def test_relay_wt_8MiB_both_ways_and_half_close(self):
        test_h3.H3PairTest.check_transport(self, "relay+wt")

    def test_socks5_wt_8MiB_both_ways_and_half_close(self):
        test_h3.H3PairTest.check_transport(self, "socks5+wt")

    def test_http_wt(self):
        front, _, server, _ = self.pair("http+wt")
        self.assert_curl_ok(front, "http+wt")
        self.assert_curl_ok(front, "http+wt (CONNECT, 1 MiB)", big=True, tunnel_mode=True)
        self.assert_through(server, self.origin.addr, 2, "http+wt")

    def test_auto_handler_with_a_socks5_client(self):
        front, _, server, _ = self.pair("wt", "socks5+wt")
        self.assert_curl_ok(front, "-L wt:// -F socks5+wt://")
        self.assert_through(server, self.origin.addr, 1, "auto over wt")

    def test_yaml_header_and_host_reach_the_server(self):
        """The dialer's `host` (port stripped, as GOST) is the :authority and its `header` map is
        sent with the CONNECT; the server dumps the request at trace level."""
        udp = udplib.free_udp_port()
        spath = self.write_file("server.yaml", YAML_SERVER.format(udp=udp))
        server = self.gost("-C", spath, udp=udp, name="server")
        front = free_port()
        cpath = self.write_file("client.yaml", YAML_CLIENT.format(front=front, udp=udp))
        self.gost("-C", cpath, port=front, name="client")
        self.assert_curl_ok(front, "YAML wt")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "x-test: yes" not in server.stderr_text():
            time.sleep(0.1)
        out = server.stderr_text().replace("\\n", "\n")  # JSON log lines: newlines escaped
        self.assertIn("x-test: yes", out)
        self.assertIn(":authority: tunnel.example", out)
        self.assertIn(":path: /t", out)
        self.assertIn(":protocol: webtransport", out)
        self.assertIn("sec-webtransport-http3-draft02: 1", out)

    def test_options_path_host_header(self):
        """path and host on both sides (GOST's wt.path / path); a client on another path is
        refused and its tunnels fail."""
        udp, server = self.server("relay+wt", "path=/tunnel")
        front, _ = self.client("relay+wt", udp, "path=/tunnel&host=example.com")
        self.assert_curl_ok(front, "path=/tunnel")
        front2, client2 = self.client("relay+wt", udp, "wt.path=/wt", name="client-wrong-path")
        self.assert_curl_fails(front2, "client on /wt, server on /tunnel")
        self.assertIn("status 404", client2.stdout_text() + client2.stderr_text())
        self.assertAlive(server)

    def test_100_concurrent_tunnels_over_one_session_per_worker(self):
        # The CONNECT stream takes one of the server's stream credits: maxStreams=128 lets 100
        # tunnels share one session (GOST's default 100 would need a second one).
        udp, server = self.server("relay+wt", "maxStreams=128")
        front, client = self.client("relay+wt", udp)
        ok, errors, elapsed = self.run_connect_batch(front, 100)
        self.check_batch(ok, errors, elapsed, 100)
        n = udplib.udp_socket_count(client.pid)
        sys.stderr.write("100 concurrent wt tunnels in %.2fs; client UDP sockets: %d (%d workers)\n"
                         % (elapsed, n, WORKERS))
        self.assertGreaterEqual(n, 1)
        # One connection per worker, or two where more than a connection's expected share of the
        # burst (net/session_pool per_session, 50) waited for the first handshake: never one per
        # tunnel.
        self.assertLessEqual(n, 2 * WORKERS, "%d QUIC connections for %d workers" % (n, WORKERS))
        # with the default stream limit a worker's sessions still carry every tunnel
        front1, client1 = self.client("relay+wt", udp, "maxStreams=100", name="client-1worker",
                                      env={"GOST_WORKERS": "1"})
        ok, errors, elapsed = self.run_connect_batch(front1, 100)
        self.check_batch(ok, errors, elapsed, 100)
        self.assertAlive(server)

    def check_restart(self, kill):
        udp, server = self.server("relay+wt")
        front, client = self.client("relay+wt", udp, "maxIdleTimeout=5s&keepalive=true&ttl=1s")
        self.restart_and_reconnect(front, server, client, kill,
                                   lambda: self.server("relay+wt", udp=udp, name="server-2"),
                                   "wt", check_gone=True)

    def test_server_restart_client_reconnects(self):
        self.check_restart(kill=False)

    def test_server_killed_and_restarted_client_reconnects(self):
        self.check_restart(kill=True)


class WtServerAnswersTest(WtTestBase):
    """GOST 3.2.6's answers (docs/PROTOCOLS.md "wt: server") and hostile streams."""

    def test_gost_answers(self):
        udp, server = self.server("tcp+wt", target=self.echo.addr)
        lines, r = self.probe(udp, "/other")
        self.assertEqual(lines.get("session"), "404", r)
        # the newer drafts' token is a session too; another extended CONNECT on the path is not
        lines, r = self.probe(udp, "/wt", "webtransport-h3")
        self.assertEqual(lines.get("session"), "200", r)
        self.assertEqual(lines.get("good"), "ping", r)
        lines, r = self.probe(udp, "/wt", "websocket")
        self.assertEqual(lines.get("session"), "500", r)
        if not udplib.have_gtlsclient():
            self.skipTest("gtlsclient (Debian package ngtcp2-client) is not installed")
        g = udplib.gtls_request(udp, "/wt")
        self.assertEqual(g.status, 500, g)
        g = udplib.gtls_request(udp, "/")
        self.assertEqual(g.status, 404, g)
        self.assertEqual(g.body, b"404 page not found\n", g)
        self.assertEqual(g.header("content-type"), "text/plain; charset=utf-8", g)
        self.assertAlive(server)

    def test_bad_streams_close_that_stream_only(self):
        """A DATA frame where a stream starts, a truncated preamble (FIN after one byte of the
        signal), a preamble naming no session: each is reset, while a good stream of the same
        session echoes and a new one still works."""
        udp, server = self.server("tcp+wt", target=self.echo.addr)
        lines, r = self.probe(udp, "/wt")
        self.assertEqual(lines.get("session"), "200", r)
        self.assertEqual(lines.get("garbage"), "reset", r)
        self.assertEqual(lines.get("truncated"), "reset", r)
        self.assertEqual(lines.get("unknown-session"), "reset", r)
        self.assertEqual(lines.get("good"), "ping", r)
        self.assertEqual(lines.get("alive"), "yes", r)
        self.assertAlive(server)
        # and the server still serves new sessions
        lines, r = self.probe(udp, "/wt")
        self.assertEqual(lines.get("good"), "ping", r)


class WtConfigTest(WtTestBase):

    def test_bad_option_values(self):
        udp = udplib.free_udp_port()
        cases = [
            (["-L", "relay+wt://127.0.0.1:%d?backlog=abc" % udp], "backlog"),
            (["-L", "relay+wt://127.0.0.1:%d?maxStreams=-1" % udp], "maxStreams"),
            (["-L", "http://127.0.0.1:%d" % free_port(),
              "-F", "relay+wt://127.0.0.1:%d?handshakeTimeout=xyz" % udp], "handshakeTimeout"),
            (["-L", "http://127.0.0.1:%d" % free_port(),
              "-F", "relay+wt://127.0.0.1:%d?header=notamap" % udp], "header"),
        ]
        for args, key in cases:
            with self.subTest(key=key):
                test_h3.H3ConfigTest.expect_config_error(self, args, key)


# ------------------------------------------------------------------------------------------------
# an independent WebTransport client: Chromium headless
# ------------------------------------------------------------------------------------------------

PAGE = """<!doctype html><meta charset="utf-8"><title>wt</title><script>
async function run() {
  const report = (text) => fetch("/result", {method: "POST", body: text});
  try {
    const hash = Uint8Array.from(atob("%(hash)s"), c => c.charCodeAt(0));
    const wt = new WebTransport("https://127.0.0.1:%(udp)d/wt",
                                {serverCertificateHashes: [{algorithm: "sha-256", value: hash}]});
    await wt.ready;
    const results = [];
    for (let i = 0; i < 3; i++) {
      const s = await wt.createBidirectionalStream();
      const w = s.writable.getWriter();
      const msg = new Uint8Array(100000 + i);
      for (let j = 0; j < msg.length; j++) msg[j] = (j * 7 + i) & 255;
      await w.write(msg);
      await w.close();
      const r = s.readable.getReader();
      let got = [], n = 0;
      for (;;) {
        const {value, done} = await r.read();
        if (done) break;
        got.push(value); n += value.length;
      }
      const all = new Uint8Array(n);
      let off = 0;
      for (const g of got) { all.set(g, off); off += g.length; }
      let same = n === msg.length;
      for (let j = 0; same && j < n; j++) same = all[j] === msg[j];
      results.push(same ? "ok" : "bad:" + n);
    }
    wt.close();
    await report("echo " + results.join(","));
  } catch (e) {
    await report("error " + e);
  }
}
run();
</script>"""


class WtBrowserTest(WtTestBase):
    """Chromium's WebTransport (serverCertificateHashes: a 10-day ECDSA P-256 certificate made
    here with openssl) opens a session with our `tcp+wt` forward service and echoes 3 streams of
    ~100 kB through it, byte for byte."""

    def test_chromium_streams_echo(self):
        browser = shutil.which("chromium") or shutil.which("chromium-browser")
        if not browser:
            self.skipTest("chromium is not installed (apt-get install chromium): the independent "
                          "WebTransport client is not run")
        d = temp_dir(self, "gost-e2e-wt-browser-")
        key, cert = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-days", "10", "-nodes", "-subj",
                        "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                        "-keyout", key, "-out", cert], check=True, capture_output=True, timeout=30)
        der = subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER"], check=True,
                             capture_output=True, timeout=30).stdout
        digest = base64.b64encode(hashlib.sha256(der).digest()).decode()
        udp = udplib.free_udp_port()
        url = "tcp+wt://127.0.0.1:%d/%s?certFile=%s&keyFile=%s" % (udp, self.echo.addr, cert, key)
        server = self.gost("-L", url, name="server", udp=udp)

        result = {}
        done = threading.Event()
        page = (PAGE % {"hash": digest, "udp": udp}).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("content-type", "text/html")
                self.send_header("content-length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def do_POST(self):
                n = int(self.headers.get("content-length", "0"))
                result["text"] = self.rfile.read(n).decode(errors="replace")
                self.send_response(204)
                self.end_headers()
                done.set()

            def log_message(self, *args):
                pass

        web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=web.serve_forever, daemon=True).start()
        self.addCleanup(web.server_close)
        self.addCleanup(web.shutdown)
        profile = os.path.join(d, "profile")
        proc = subprocess.Popen(
            [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--user-data-dir=" + profile, "--enable-quic",
             "http://127.0.0.1:%d/page.html" % web.server_address[1]],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ, HOME=d),
            start_new_session=True)  # its own process group: the browser's helpers go with it

        def kill_group():
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        def stop():
            kill_group()
            proc.wait(10)
            proc.stderr.close()
        self.addCleanup(stop)
        if not done.wait(60):
            kill_group()
            err = proc.stderr.read().decode(errors="replace")[-3000:]
            self.fail("Chromium reported nothing within 60 s; its stderr: %s" % err)
        sys.stderr.write("chromium: %s\n" % result.get("text"))
        self.assertEqual(result.get("text"), "echo ok,ok,ok", server.diagnostics())
        self.assertAlive(server)


if __name__ == "__main__":
    gostlib.main()

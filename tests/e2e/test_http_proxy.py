"""End-to-end tests of the HTTP proxy handler (docs/PROTOCOLS.md "http", "cli: output").

Run: /usr/bin/python3 tests/e2e/test_http_proxy.py <path-to-gost>
"""

import json
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gostlib  # noqa: E402
from gostlib import (request_until_close, RESP_200_CONNECT, RESP_407, RESP_407_PC, RESP_503_CONNECT,  # noqa: E402
                     RESP_503_FORWARD, basic, connect, curl, free_port, recv_exact,
                     recv_until_close, run_gost, HTTPResponseReader)

USER, PASS = "user", "pass"
AUTH = basic(USER, PASS)                     # "Basic dXNlcjpwYXNz"
WRONG_AUTH = basic(USER, "wrong")

# docs/PROTOCOLS.md "cli: output" — `gost -L http://user:pass@:8080 -O yaml` (verified against GOST
# 3.2.6)
SPEC_71_YAML = """services:
  - name: service-0
    addr: :8080
    handler:
      type: http
      auth:
        username: user
        password: pass
    listener:
      type: tcp
"""

# docs/PROTOCOLS.md "cli: output" — same with -O json (verified against GOST 3.2.6)
SPEC_71_JSON = """{
  "services": [
    {
      "name": "service-0",
      "addr": ":8080",
      "handler": {
        "type": "http",
        "auth": {
          "username": "user",
          "password": "pass"
        }
      },
      "listener": {
        "type": "tcp"
      }
    }
  ]
}
"""

# docs/PROTOCOLS.md "cli: output" — `gost -L http://:8000 -F http://user:pass@:8080 -O yaml`
# (verified against GOST 3.2.6)
SPEC_72_YAML = """services:
  - name: service-0
    addr: :8000
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
            addr: :8080
            connector:
              type: http
              auth:
                username: user
                password: pass
            dialer:
              type: tcp
"""

# JSON of the same configuration: docs/PROTOCOLS.md "cli: output" JSON rules (2-space indent, json
# names, key order of "config: output order", empty fields omitted) applied to the structure
# above.
SPEC_72_JSON = """{
  "services": [
    {
      "name": "service-0",
      "addr": ":8000",
      "handler": {
        "type": "http",
        "chain": "chain-0"
      },
      "listener": {
        "type": "tcp"
      }
    }
  ],
  "chains": [
    {
      "name": "chain-0",
      "hops": [
        {
          "name": "hop-0",
          "nodes": [
            {
              "name": "node-0",
              "addr": ":8080",
              "connector": {
                "type": "http",
                "auth": {
                  "username": "user",
                  "password": "pass"
                }
              },
              "dialer": {
                "type": "tcp"
              }
            }
          ]
        }
      ]
    }
  ]
}
"""


def raw_get(origin, path="/", auth=None, extra_headers=(), method="GET"):
    req = "%s http://%s%s HTTP/1.1\r\nHost: %s\r\n" % (method, origin.addr, path, origin.addr)
    if auth:
        req += "Proxy-Authorization: %s\r\n" % auth
    for h in extra_headers:
        req += h + "\r\n"
    req += "\r\n"
    return req.encode()


class HTTPProxyAuthTest(gostlib.GostTestCase):
    """`gost -L http://user:pass@127.0.0.1:PORT`"""

    def setUp(self):
        self.origin = self.start_server(gostlib.OriginServer())
        self.echo = self.start_server(gostlib.EchoServer())
        self.port = free_port()
        self.proxy_url = "http://%s:%s@127.0.0.1:%d" % (USER, PASS, self.port)
        self.gost = self.start_gost("-L", "http://%s:%s@127.0.0.1:%d" % (USER, PASS, self.port),
                                    port=self.port)

    # ---- forward proxy via curl ------------------------------------------

    def test_curl_get_with_credentials(self):
        r = curl(self.origin.url, proxy=self.proxy_url)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.http_code, "200", r)
        self.assertEqual(r.body, self.origin.body, r)
        # exactly one request reached the origin, without proxy headers (docs/PROTOCOLS.md
        # "http: forward proxy")
        self.assertEqual(len(self.origin.requests), 1)
        names = [k.lower() for k, _ in self.origin.requests[0]["headers"]]
        self.assertNotIn("proxy-authorization", names)
        self.assertNotIn("proxy-connection", names)
        self.assertEqual(self.origin.requests[0]["path"], "/")

    def test_curl_get_without_credentials_is_407(self):
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % self.port)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.http_code, "407", r)
        self.assertEqual(r.body, b"", r)
        self.assertEqual(self.origin.requests, [])

    def test_curl_get_with_wrong_credentials_is_407(self):
        r = curl(self.origin.url, proxy="http://%s:wrong@127.0.0.1:%d" % (USER, self.port))
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.http_code, "407", r)
        self.assertEqual(self.origin.requests, [])

    def test_curl_big_body(self):
        r = curl(self.origin.url + "big", proxy=self.proxy_url)
        self.assertEqual(r.http_code, "200", r)
        self.assertEqual(len(r.body), len(self.origin.big))
        self.assertEqual(gostlib.sha256(r.body), gostlib.sha256(self.origin.big))

    # ---- exact 407 bytes ---------------------------------------------------

    def _assert_exact_then_close(self, request, expected):
        s = connect(self.port)
        try:
            s.sendall(request)
            data, closed, _ = recv_until_close(s, timeout=10)
        finally:
            s.close()
        self.assertEqual(data, expected)
        self.assertTrue(closed, "server did not close the connection after %r" % expected)

    def test_raw_407_no_credentials(self):
        self._assert_exact_then_close(raw_get(self.origin), RESP_407)
        self.assertEqual(self.origin.requests, [])

    def test_raw_407_wrong_credentials(self):
        self._assert_exact_then_close(raw_get(self.origin, auth=WRONG_AUTH), RESP_407)
        self.assertEqual(self.origin.requests, [])

    def test_raw_407_wrong_user(self):
        self._assert_exact_then_close(raw_get(self.origin, auth=basic("other", PASS)), RESP_407)

    def test_raw_407_scheme_prefix_case_sensitive(self):
        # docs/PROTOCOLS.md "http: authentication": the prefix "Basic " is case-sensitive
        lower = "basic " + AUTH.split(" ", 1)[1]
        self._assert_exact_then_close(raw_get(self.origin, auth=lower), RESP_407)

    def test_raw_407_proxy_connection_variant(self):
        self._assert_exact_then_close(
            raw_get(self.origin, extra_headers=["Proxy-Connection: keep-alive"]), RESP_407_PC)

    def test_raw_407_proxy_connection_variant_case_insensitive(self):
        self._assert_exact_then_close(
            raw_get(self.origin, auth=WRONG_AUTH, extra_headers=["Proxy-Connection: Keep-Alive"]),
            RESP_407_PC)

    def test_raw_407_connect_without_credentials(self):
        req = ("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (self.echo.addr, self.echo.addr)).encode()
        self._assert_exact_then_close(req, RESP_407)
        time.sleep(0.2)
        self.assertEqual(self.echo.connections, 0, "target was dialed although auth failed")

    # ---- forward proxy: headers, keep-alive, chunked ------------------------

    def test_forwarded_request_headers(self):
        s = connect(self.port)
        try:
            s.sendall(raw_get(self.origin, path="/path/h?q=1", auth=AUTH,
                              extra_headers=["Proxy-Connection: keep-alive", "X-Custom: 1"]))
            code, status, headers, body, _, _ = HTTPResponseReader(s).read_response()
        finally:
            s.close()
        self.assertEqual(code, 200, status)
        self.assertEqual(body, b"path=/path/h?q=1")
        req = self.origin.requests[0]
        self.assertEqual(req["path"], "/path/h?q=1")  # origin-form upstream
        hdrs = {k.lower(): v for k, v in req["headers"]}
        self.assertEqual(hdrs.get("host"), self.origin.addr)
        self.assertEqual(hdrs.get("x-custom"), "1")
        self.assertEqual(hdrs.get("user-agent"), "Go-http-client/1.1")
        self.assertNotIn("proxy-authorization", hdrs)
        self.assertNotIn("proxy-connection", hdrs)

    def test_keepalive_several_requests_one_connection(self):
        paths = ["/path/one", "/path/two?x=y", "/", "/chunked", "/path/last"]
        s = connect(self.port)
        reader = HTTPResponseReader(s, timeout=10)
        try:
            for p in paths:
                s.sendall(raw_get(self.origin, path=p, auth=AUTH))
                code, status, headers, body, raw, chunked = reader.read_response()
                self.assertEqual(code, 200, "request %s: %s" % (p, status))
                if p.startswith("/path"):
                    self.assertEqual(body, ("path=%s" % p).encode())
                elif p == "/chunked":
                    self.assertTrue(chunked, "chunked response lost its chunked framing: %r" % headers)
                    self.assertEqual(body, self.origin.chunked_body)
                else:
                    self.assertEqual(body, self.origin.body)
            self.assertEqual(bytes(reader.buf), b"", "unexpected extra bytes")
        finally:
            s.close()
        self.assertEqual([r["path"] for r in self.origin.requests], paths)

    def test_keepalive_later_requests_not_reauthenticated(self):
        # docs/PROTOCOLS.md "http: authentication": only the first request of a connection is
        # authenticated
        s = connect(self.port)
        reader = HTTPResponseReader(s, timeout=10)
        try:
            s.sendall(raw_get(self.origin, path="/path/a", auth=AUTH))
            code, status, _, body, _, _ = reader.read_response()
            self.assertEqual((code, body), (200, b"path=/path/a"), status)
            s.sendall(raw_get(self.origin, path="/path/b"))
            code, status, _, body, _, _ = reader.read_response()
            self.assertEqual((code, body), (200, b"path=/path/b"), status)
        finally:
            s.close()

    def test_chunked_response_passes_through_curl(self):
        r = curl(self.origin.url + "chunked", proxy=self.proxy_url)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.http_code, "200", r)
        self.assertEqual(r.body, self.origin.chunked_body)

    def test_chunked_response_raw_framing(self):
        s = connect(self.port)
        try:
            s.sendall(raw_get(self.origin, path="/chunked", auth=AUTH))
            code, status, headers, body, raw, chunked = HTTPResponseReader(s).read_response()
        finally:
            s.close()
        self.assertEqual(code, 200, status)
        self.assertTrue(chunked, "Transfer-Encoding: chunked expected, headers %r" % headers)
        self.assertNotIn("content-length", [k.lower() for k, _ in headers])
        self.assertEqual(body, self.origin.chunked_body)
        self.assertTrue(raw.endswith(b"0\r\n\r\n"), raw[-20:])

    def test_forward_to_closed_port_is_503(self):
        dead = free_port()
        req = ("GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nProxy-Authorization: %s\r\n\r\n"
               % (dead, dead, AUTH)).encode()
        self._assert_exact_then_close(req, RESP_503_FORWARD)

    def test_https_scheme_forward_is_400(self):
        # docs/PROTOCOLS.md "http: processing order" step 2 (after successful authentication)
        req = ("GET https://%s/ HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n"
               % (self.origin.addr, self.origin.addr, AUTH)).encode()
        self._assert_exact_then_close(req, b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")

    # ---- CONNECT -----------------------------------------------------------

    def test_curl_connect_tunnel(self):
        r = curl(self.origin.url, proxy=self.proxy_url, tunnel=True)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.http_connect, "200", r)
        self.assertEqual(r.http_code, "200", r)
        self.assertEqual(r.body, self.origin.body)

    def test_curl_connect_without_credentials_is_407(self):
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % self.port, tunnel=True)
        self.assertNotEqual(r.rc, 0, r)
        self.assertEqual(r.http_connect, "407", r)
        self.assertEqual(self.origin.requests, [])

    def test_raw_connect_exact_reply_and_pipelined_bytes(self):
        pipelined = b"pipelined bytes right after the header\n"
        s = connect(self.port)
        try:
            s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n"
                       % (self.echo.addr, self.echo.addr, AUTH)).encode() + pipelined)
            head = recv_exact(s, len(RESP_200_CONNECT))
            self.assertEqual(head, RESP_200_CONNECT)
            self.assertEqual(recv_exact(s, len(pipelined)), pipelined)
            more = os.urandom(100000)
            s.sendall(more)
            self.assertEqual(recv_exact(s, len(more), timeout=15), more)
            s.shutdown(socket.SHUT_WR)
            rest, closed, _ = recv_until_close(s, timeout=15)
            self.assertEqual(rest, b"")
            self.assertTrue(closed, "tunnel not closed after both sides finished")
        finally:
            s.close()

    def test_raw_connect_to_closed_port_is_503(self):
        dead = free_port()
        req = ("CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nProxy-Authorization: %s\r\n\r\n"
               % (dead, dead, AUTH)).encode()
        self._assert_exact_then_close(req, RESP_503_CONNECT)

    def test_server_survives_and_sigterm_exits(self):
        self.assertEqual(curl(self.origin.url, proxy=self.proxy_url).http_code, "200")
        self.gost.expected_exit = True
        self.gost.proc.send_signal(signal.SIGTERM)
        rc = self.gost.wait_exit(5)
        self.assertIsNotNone(rc, "gost did not exit within 5 s of SIGTERM")
        self.assertFalse(rc < 0 and -rc in gostlib.CRASH_SIGNALS, gostlib.describe_rc(rc))
        self.assertTrue(gostlib.port_closed_for_connect(self.port), "port still open after exit")


class HTTPProxyNoAuthTest(gostlib.GostTestCase):
    """`gost -L http://127.0.0.1:PORT` — no authentication."""

    def setUp(self):
        self.origin = self.start_server(gostlib.OriginServer())
        self.port = free_port()
        self.start_gost("-L", "http://127.0.0.1:%d" % self.port, port=self.port)

    def test_get_and_connect_without_credentials(self):
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % self.port)
        self.assertEqual((r.rc, r.http_code, r.body), (0, "200", self.origin.body), r)
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % self.port, tunnel=True)
        self.assertEqual((r.rc, r.http_connect, r.http_code, r.body),
                         (0, "200", "200", self.origin.body), r)


class ConfigFileTest(gostlib.GostTestCase):
    """-C file.yaml and -O yaml/json (docs/PROTOCOLS.md "cli: output")."""

    def setUp(self):
        self.origin = self.start_server(gostlib.OriginServer())

    def _check_auth_proxy(self, port):
        r = curl(self.origin.url, proxy="http://user:pass@127.0.0.1:%d" % port)
        self.assertEqual((r.rc, r.http_code, r.body), (0, "200", self.origin.body), r)
        r = curl(self.origin.url, proxy="http://user:pass@127.0.0.1:%d" % port, tunnel=True)
        self.assertEqual((r.rc, r.http_connect, r.body), (0, "200", self.origin.body), r)
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % port)
        self.assertEqual(r.http_code, "407", r)
        data, closed = request_until_close(port, raw_get(self.origin), timeout=10)
        self.assertEqual(data, RESP_407)
        self.assertTrue(closed)

    def test_yaml_config_file(self):
        port = free_port()
        path = self.write_file("gost.yaml", SPEC_71_YAML.replace("addr: :8080", "addr: :%d" % port))
        self.start_gost("-C", path, port=port)
        self._check_auth_proxy(port)

    def test_output_yaml_71(self):
        cp = run_gost(["-L", "http://user:pass@:8080", "-O", "yaml"])
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual(cp.stdout.decode(), SPEC_71_YAML)

    def test_output_json_71(self):
        cp = run_gost(["-L", "http://user:pass@:8080", "-O", "json"])
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual(cp.stdout.decode(), SPEC_71_JSON)

    def test_output_yaml_72(self):
        cp = run_gost(["-L", "http://:8000", "-F", "http://user:pass@:8080", "-O", "yaml"])
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual(cp.stdout.decode(), SPEC_72_YAML)

    def test_output_json_72(self):
        cp = run_gost(["-L", "http://:8000", "-F", "http://user:pass@:8080", "-O", "json"])
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual(json.loads(cp.stdout.decode()), json.loads(SPEC_72_JSON))
        self.assertEqual(cp.stdout.decode(), SPEC_72_JSON)

    def test_output_does_not_bind(self):
        port = free_port()
        cp = run_gost(["-L", "http://user:pass@127.0.0.1:%d" % port, "-O", "yaml"])
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertTrue(cp.stdout.decode().startswith("services:\n  - name: service-0\n"))
        self.assertTrue(gostlib.port_closed_for_connect(port))

    def test_output_yaml_71_fed_back(self):
        cp = run_gost(["-L", "http://user:pass@:8080", "-O", "yaml"])
        self.assertEqual(cp.returncode, 0, cp.stderr)
        text = cp.stdout.decode()
        self.assertIn("addr: :8080\n", text)
        port = free_port()
        path = self.write_file("out.yaml", text.replace("addr: :8080", "addr: :%d" % port))
        self.start_gost("-C", path, port=port)
        self._check_auth_proxy(port)

    def test_output_json_71_fed_back(self):
        cp = run_gost(["-L", "http://user:pass@:8080", "-O", "json"])
        self.assertEqual(cp.returncode, 0, cp.stderr)
        port = free_port()
        text = cp.stdout.decode().replace('"addr": ":8080"', '"addr": ":%d"' % port)
        path = self.write_file("out.json", text)
        self.start_gost("-C", path, port=port)
        self._check_auth_proxy(port)

    def test_output_yaml_72_fed_back(self):
        cp = run_gost(["-L", "http://:8000", "-F", "http://user:pass@:8080", "-O", "yaml"])
        self.assertEqual(cp.returncode, 0, cp.stderr)
        front, back = gostlib.free_ports(2)
        text = cp.stdout.decode()
        self.assertIn("addr: :8000\n", text)
        self.assertIn("addr: :8080\n", text)
        text = text.replace("addr: :8000", "addr: :%d" % front).replace("addr: :8080", "addr: :%d" % back)
        # the upstream the chain expects: an HTTP proxy requiring user:pass
        self.start_gost("-L", "http://user:pass@127.0.0.1:%d" % back, port=back, name="upstream")
        path = self.write_file("chain.yaml", text)
        self.start_gost("-C", path, port=front, name="front")
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % front)
        self.assertEqual((r.rc, r.http_code, r.body), (0, "200", self.origin.body), r)
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % front, tunnel=True)
        self.assertEqual((r.rc, r.http_connect, r.body), (0, "200", self.origin.body), r)


class VersionTest(gostlib.GostTestCase):

    def test_version_flag(self):
        cp = run_gost(["-V"], timeout=10)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        out = cp.stdout.decode()
        self.assertTrue(out.startswith("gost 3."), repr(out))
        self.assertTrue(out.endswith("\n"), repr(out))
        self.assertEqual(out.count("\n"), 1, repr(out))


if __name__ == "__main__":
    gostlib.main()

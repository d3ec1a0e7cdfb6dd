"""End-to-end tests of proxy chains (-F and YAML `chains:`), spec: docs/PROTOCOLS.md "core: routes",
"http: connector".

Run: /usr/bin/python3 tests/e2e/test_chain.py <path-to-gost>
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gostlib  # noqa: E402
from gostlib import (request_until_close, RESP_200_CONNECT, RESP_503_CONNECT, RESP_503_FORWARD, connect, curl,  # noqa: E402
                     free_ports, recv_exact, recv_until_close)


def connect_request(target, auth=None):
    """The exact CONNECT the http connector sends (docs/PROTOCOLS.md "http: connector")."""
    req = "CONNECT %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: Go-http-client/1.1\r\n" % (target, target)
    if auth:
        req += "Proxy-Authorization: Basic %s\r\n" % auth
    req += "Proxy-Connection: keep-alive\r\n\r\n"
    return req.encode()


B64_USER_PASS = "dXNlcjpwYXNz"  # base64("user:pass")


class ChainTestBase(gostlib.GostTestCase):

    def setUp(self):
        self.origin = self.start_server(gostlib.OriginServer())
        self.echo = self.start_server(gostlib.EchoServer())

    def assert_proxy_works(self, port, msg=""):
        proxy = "http://127.0.0.1:%d" % port
        r = curl(self.origin.url, proxy=proxy)
        self.assertEqual((r.rc, r.http_code, r.body), (0, "200", self.origin.body), "%s GET: %r" % (msg, r))
        r = curl(self.origin.url + "path/through-connect", proxy=proxy, tunnel=True)
        self.assertEqual((r.rc, r.http_connect, r.http_code, r.body),
                         (0, "200", "200", b"path=/path/through-connect"), "%s CONNECT: %r" % (msg, r))
        # raw CONNECT to the echo server
        s = connect(port)
        try:
            s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (self.echo.addr, self.echo.addr)).encode())
            self.assertEqual(recv_exact(s, len(RESP_200_CONNECT)), RESP_200_CONNECT, msg)
            payload = os.urandom(50000)
            s.sendall(payload)
            self.assertEqual(recv_exact(s, len(payload), timeout=15), payload, msg)
        finally:
            s.close()

    def assert_hops_carried(self, hops, msg=""):
        """assert_proxy_works's three tunnels (GET and CONNECT to the origin, CONNECT to the echo
        server) went through every hop of `hops` [(process, its address)], in order: each hop
        carried one tunnel per request to the next hop, the last one to the targets. A chain
        that skipped a hop (or a front that went direct) fails here, while the bytes alone
        would not show it."""
        for (proc, _), (_, nxt) in zip(hops, hops[1:]):
            gostlib.assert_tunnels_through(self, proc, nxt, 3, msg)
        last = hops[-1][0]
        gostlib.assert_tunnels_through(self, last, self.origin.addr, 2, msg)
        gostlib.assert_tunnels_through(self, last, self.echo.addr, 1, msg)

    def assert_proxy_fails_503(self, port, msg=""):
        proxy = "http://127.0.0.1:%d" % port
        r = curl(self.origin.url, proxy=proxy)
        self.assertEqual(r.http_code, "503", "%s GET: %r" % (msg, r))
        r = curl(self.origin.url, proxy=proxy, tunnel=True)
        self.assertEqual(r.http_connect, "503", "%s CONNECT: %r" % (msg, r))
        # exact bytes (docs/PROTOCOLS.md): forward-proxy 503 ("http: forward proxy") and CONNECT 503
        # ("http: CONNECT")
        data, closed = request_until_close(port, ("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (self.origin.url, self.origin.addr)).encode(), timeout=20)
        self.assertEqual(data, RESP_503_FORWARD, msg)
        self.assertTrue(closed, msg)
        data, closed = request_until_close(port, ("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (self.echo.addr, self.echo.addr)).encode(), timeout=20)
        self.assertEqual(data, RESP_503_CONNECT, msg)
        self.assertTrue(closed, msg)


class TwoHopTest(ChainTestBase):

    def test_two_hop_get_and_connect(self):
        a, b = free_ports(2)
        srv = self.start_gost("-L", "http://user:pass@127.0.0.1:%d" % b, port=b, name="hop-B")
        self.start_gost("-L", "http://127.0.0.1:%d" % a, "-F", "http://user:pass@127.0.0.1:%d" % b,
                        port=a, name="front-A")
        self.assert_proxy_works(a, "2-hop")
        # the origin saw the request coming through B, without proxy headers
        for req in self.origin.requests:
            names = [k.lower() for k, _ in req["headers"]]
            self.assertNotIn("proxy-authorization", names)
        # B is really on the path: without it, the front proxy fails with 503
        srv.stop()
        self.assert_proxy_fails_503(a, "2-hop, B stopped")

    def test_two_hop_connect_request_on_the_wire(self):
        a, b = free_ports(2)
        self.start_gost("-L", "http://user:pass@127.0.0.1:%d" % b, port=b, name="hop-B")
        tap = self.start_server(gostlib.TapProxy(b))
        self.start_gost("-L", "http://127.0.0.1:%d" % a, "-F", "http://user:pass@127.0.0.1:%d" % tap.port,
                        port=a, name="front-A")
        s = connect(a)
        try:
            s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\nping" % (self.echo.addr, self.echo.addr)).encode())
            self.assertEqual(recv_exact(s, len(RESP_200_CONNECT)), RESP_200_CONNECT)
            self.assertEqual(recv_exact(s, 4), b"ping")
        finally:
            s.close()
        expected = connect_request(self.echo.addr, B64_USER_PASS)
        got = tap.wait_capture_prefix(expected + b"ping")
        self.assertEqual(got, expected + b"ping")

    def test_wrong_credentials_front_gets_503(self):
        a, b = free_ports(2)
        self.start_gost("-L", "http://user:pass@127.0.0.1:%d" % b, port=b, name="hop-B")
        self.start_gost("-L", "http://127.0.0.1:%d" % a, "-F", "http://user:wrong@127.0.0.1:%d" % b,
                        port=a, name="front-A")
        self.assert_proxy_fails_503(a, "wrong credentials")
        self.assertEqual(self.origin.requests, [])
        self.assertEqual(self.echo.connections, 0)

    def test_missing_credentials_front_gets_503(self):
        a, b = free_ports(2)
        self.start_gost("-L", "http://user:pass@127.0.0.1:%d" % b, port=b, name="hop-B")
        self.start_gost("-L", "http://127.0.0.1:%d" % a, "-F", "http://127.0.0.1:%d" % b,
                        port=a, name="front-A")
        self.assert_proxy_fails_503(a, "no credentials")
        self.assertEqual(self.origin.requests, [])


class ThreeHopTest(ChainTestBase):

    def test_three_hop_one_client_process_two_F(self):
        a, b, c = free_ports(3)
        self.start_gost("-L", "http://127.0.0.1:%d" % b, port=b, name="hop-B")
        self.start_gost("-L", "http://user:pass@127.0.0.1:%d" % c, port=c, name="hop-C")
        tap = self.start_server(gostlib.TapProxy(b))
        self.start_gost("-L", "http://127.0.0.1:%d" % a,
                        "-F", "http://127.0.0.1:%d" % tap.port,
                        "-F", "http://user:pass@127.0.0.1:%d" % c,
                        port=a, name="front-A")
        self.assert_proxy_works(a, "3-hop (one process, two -F)")
        # docs/PROTOCOLS.md "core: routes": A dials only B, asks B for C, then asks C (inside the
        # tunnel) for the target
        first = connect_request("127.0.0.1:%d" % c)
        second_prefix = b"CONNECT "
        got = tap.wait_capture(len(first) + 40)
        self.assertEqual(got[:len(first)], first)
        self.assertEqual(got[len(first):len(first) + len(second_prefix)], second_prefix)
        inner_end = got.find(b"\r\n\r\n", len(first)) + 4
        inner = got[len(first):inner_end]
        target = inner.split(b" ")[1].decode()
        self.assertEqual(inner, connect_request(target, B64_USER_PASS))
        self.assertIn(target, (self.origin.addr, self.echo.addr))

    def test_three_hop_three_processes(self):
        a, b, c = free_ports(3)
        self.start_gost("-L", "http://user:pass@127.0.0.1:%d" % c, port=c, name="hop-C")
        mid = self.start_gost("-L", "http://127.0.0.1:%d" % b, "-F", "http://user:pass@127.0.0.1:%d" % c,
                              port=b, name="hop-B")
        self.start_gost("-L", "http://127.0.0.1:%d" % a, "-F", "http://127.0.0.1:%d" % b,
                        port=a, name="front-A")
        self.assert_proxy_works(a, "3-hop (three processes)")
        mid.stop()
        self.assert_proxy_fails_503(a, "3-hop, middle stopped")

    def test_three_hop_last_hop_wrong_credentials(self):
        a, b, c = free_ports(3)
        self.start_gost("-L", "http://127.0.0.1:%d" % b, port=b, name="hop-B")
        self.start_gost("-L", "http://user:pass@127.0.0.1:%d" % c, port=c, name="hop-C")
        self.start_gost("-L", "http://127.0.0.1:%d" % a,
                        "-F", "http://127.0.0.1:%d" % b,
                        "-F", "http://user:bad@127.0.0.1:%d" % c,
                        port=a, name="front-A")
        self.assert_proxy_fails_503(a, "3-hop, wrong credentials on last hop")
        self.assertEqual(self.origin.requests, [])


YAML_CHAIN_INLINE = """services:
  - name: front
    addr: 127.0.0.1:{a}
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
          - name: node-b
            addr: 127.0.0.1:{b}
            connector:
              type: http
            dialer:
              type: tcp
      - name: hop-1
        nodes:
          - name: node-c
            addr: 127.0.0.1:{c}
            connector:
              type: http
              auth:
                username: user
                password: {pw}
            dialer:
              type: tcp
"""

# hops given at top level and referenced by name (docs/PROTOCOLS.md "config: objects")
YAML_CHAIN_REFS = """services:
  - name: front
    addr: 127.0.0.1:{a}
    handler:
      type: http
      chain: upstream
chains:
  - name: upstream
    hops:
      - name: hop-b
      - name: hop-c
hops:
  - name: hop-b
    nodes:
      - name: node-b
        addr: 127.0.0.1:{b}
  - name: hop-c
    nodes:
      - name: node-c
        addr: 127.0.0.1:{c}
        connector:
          type: http
          auth:
            username: user
            password: pass
"""

# one process running all three services from one file
YAML_ALL_IN_ONE = """services:
  - name: front
    addr: 127.0.0.1:{a}
    handler:
      type: http
      chain: chain-0
    listener:
      type: tcp
  - name: hop-b-svc
    addr: 127.0.0.1:{b}
    handler:
      type: http
    listener:
      type: tcp
  - name: hop-c-svc
    addr: 127.0.0.1:{c}
    handler:
      type: http
      auth:
        username: user
        password: pass
    listener:
      type: tcp
chains:
  - name: chain-0
    hops:
      - name: hop-0
        nodes:
          - name: node-0
            addr: 127.0.0.1:{b}
            connector:
              type: http
            dialer:
              type: tcp
      - name: hop-1
        nodes:
          - name: node-0
            addr: 127.0.0.1:{c}
            connector:
              type: http
              auth:
                username: user
                password: pass
            dialer:
              type: tcp
"""

YAML_TWO_HOP = """services:
  - name: service-0
    addr: 127.0.0.1:{a}
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
            addr: 127.0.0.1:{b}
            connector:
              type: http
              auth:
                username: user
                password: {pw}
            dialer:
              type: tcp
"""


class YamlChainTest(ChainTestBase):

    def _start_b_c(self, b, c):
        hb = self.start_gost("-L", "http://127.0.0.1:%d" % b, port=b, name="hop-B")
        hc = self.start_gost("-L", "http://user:pass@127.0.0.1:%d" % c, port=c, name="hop-C")
        return [(hb, "127.0.0.1:%d" % b), (hc, "127.0.0.1:%d" % c)]

    def test_yaml_two_hop(self):
        a, b = free_ports(2)
        hb = self.start_gost("-L", "http://user:pass@127.0.0.1:%d" % b, port=b, name="hop-B")
        path = self.write_file("chain.yaml", YAML_TWO_HOP.format(a=a, b=b, pw="pass"))
        self.start_gost("-C", path, port=a, name="front-A")
        self.assert_proxy_works(a, "yaml 2-hop")
        self.assert_hops_carried([(hb, "127.0.0.1:%d" % b)], "yaml 2-hop")

    def test_yaml_two_hop_wrong_credentials(self):
        a, b = free_ports(2)
        self.start_gost("-L", "http://user:pass@127.0.0.1:%d" % b, port=b, name="hop-B")
        path = self.write_file("chain.yaml", YAML_TWO_HOP.format(a=a, b=b, pw="wrong"))
        self.start_gost("-C", path, port=a, name="front-A")
        self.assert_proxy_fails_503(a, "yaml 2-hop wrong credentials")

    def test_yaml_three_hop_inline_nodes(self):
        a, b, c = free_ports(3)
        hops = self._start_b_c(b, c)
        path = self.write_file("chain.yaml", YAML_CHAIN_INLINE.format(a=a, b=b, c=c, pw="pass"))
        self.start_gost("-C", path, port=a, name="front-A")
        self.assert_proxy_works(a, "yaml 3-hop")
        self.assert_hops_carried(hops, "yaml 3-hop")

    def test_yaml_three_hop_wrong_credentials(self):
        a, b, c = free_ports(3)
        self._start_b_c(b, c)
        path = self.write_file("chain.yaml", YAML_CHAIN_INLINE.format(a=a, b=b, c=c, pw="nope"))
        self.start_gost("-C", path, port=a, name="front-A")
        self.assert_proxy_fails_503(a, "yaml 3-hop wrong credentials")

    def test_yaml_hop_references(self):
        a, b, c = free_ports(3)
        hops = self._start_b_c(b, c)
        path = self.write_file("chain.yaml", YAML_CHAIN_REFS.format(a=a, b=b, c=c))
        self.start_gost("-C", path, port=a, name="front-A")
        self.assert_proxy_works(a, "yaml hop references")
        # both referenced hops are on the path, B then C
        self.assert_hops_carried(hops, "yaml hop references")

    def test_yaml_all_services_in_one_process(self):
        a, b, c = free_ports(3)
        path = self.write_file("all.yaml", YAML_ALL_IN_ONE.format(a=a, b=b, c=c))
        self.start_gost("-C", path, ports=[a, b, c], name="all-in-one")
        self.assert_proxy_works(a, "yaml all-in-one")
        # the last hop still requires authentication when used directly
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % c)
        self.assertEqual(r.http_code, "407", r)


if __name__ == "__main__":
    gostlib.main()

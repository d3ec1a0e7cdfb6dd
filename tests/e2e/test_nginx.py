"""ws and pht servers behind nginx as a reverse proxy (a real deployment shape).

nginx (Debian's nginx-light) listens on 127.0.0.1 and proxies `/ws` (WebSocket upgrade headers)
to a `-L relay+ws` server and `/pht/` (proxy_buffering off) to a `-L relay+pht` server whose
paths are under /pht/. The location blocks are the ones the README documents. Our client goes
through nginx: curl through a local http proxy, 8 MiB both ways, half-close.
Run: /usr/bin/python3 tests/e2e/test_nginx.py <path-to-gost>
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gostlib  # noqa: E402
import test_integrity  # noqa: E402
from gostlib import curl, free_port, free_ports  # noqa: E402

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

# The README's location blocks, with the upstream ports filled in.
LOCATIONS = """
    location /ws {
      proxy_pass http://127.0.0.1:%(ws)d;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_read_timeout 1h;
      proxy_send_timeout 1h;
    }
    location /pht/ {
      proxy_pass http://127.0.0.1:%(pht)d;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 1h;
    }
"""

PHT_PATHS = "authorizePath=/pht/authorize&pushPath=/pht/push&pullPath=/pht/pull"


class Nginx:
    def __init__(self, port, ws_port, pht_port):
        self.port = port
        self.dir = tempfile.mkdtemp(prefix="gost-e2e-nginx-")
        os.makedirs(os.path.join(self.dir, "tmp"))
        conf = os.path.join(self.dir, "nginx.conf")
        d = self.dir
        with open(conf, "w") as f:
            f.write("""worker_processes 1;
daemon off;
master_process on;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %(d)s/tmp/body;
  proxy_temp_path %(d)s/tmp/proxy;
  fastcgi_temp_path %(d)s/tmp/fastcgi;
  uwsgi_temp_path %(d)s/tmp/uwsgi;
  scgi_temp_path %(d)s/tmp/scgi;
  server {
    listen 127.0.0.1:%(port)d;
%(locations)s
  }
}
""" % {"d": d, "port": port, "locations": LOCATIONS % {"ws": ws_port, "pht": pht_port}})
        self.proc = subprocess.Popen([NGINX, "-p", d, "-c", conf, "-e", os.path.join(d, "error.log")],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(d, "stderr.log"), "wb"))
        gostlib.wait_port(port, proc=self.proc)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)

    def errors(self):
        try:
            with open(os.path.join(self.dir, "error.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return ""


class NginxTest(gostlib.GostTestCase):
    duplex_exchange = test_integrity.IntegrityTest.duplex_exchange
    half_close_exchange = test_integrity.IntegrityTest.half_close_exchange
    both_ways_and_half_close = test_integrity.IntegrityTest.both_ways_and_half_close

    def setUp(self):
        if not os.path.exists(NGINX):
            self.skipTest("nginx is not installed (scripts/setup.sh installs nginx-light)")
        self.origin = self.start_server(gostlib.OriginServer())
        self.duplex = self.start_server(gostlib.DuplexServer(test_integrity.SIZE))
        self.half_reply = os.urandom(test_integrity.HALF_SIZE)
        self.halfsrv = self.start_server(gostlib.ReplyAfterEOFServer(self.half_reply))
        ws, pht, self.nport = free_ports(3)
        self.ws_server = self.start_gost("-L", "relay+ws://127.0.0.1:%d" % ws, port=ws,
                                         name="ws-server")
        self.pht_server = self.start_gost("-L", "relay+pht://127.0.0.1:%d?%s" % (pht, PHT_PATHS),
                                          port=pht, name="pht-server")
        self.nginx = Nginx(self.nport, ws, pht)
        self.addCleanup(self.nginx.stop)

    def client(self, node):
        front = free_port()
        self.start_gost("-L", "http://127.0.0.1:%d" % front, "-F", node, port=front, name="client")
        return front

    def check(self, front, label, server):
        """curl, 8 MiB both ways and half-close through `front`, whose tunnels must have gone
        through nginx to `server` (the gost server behind it)."""
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % front)
        self.assertEqual((r.rc, r.http_code, r.body), (0, "200", self.origin.body),
                         "%s: %r\n%s" % (label, r, self.nginx.errors()))
        self.both_ways_and_half_close(front, label)
        # the path: every tunnel reached the gost server behind nginx (the client knows only
        # nginx's address, so through nginx)
        for target in (self.origin.addr, self.duplex.addr, self.halfsrv.addr):
            gostlib.assert_tunnels_through(self, server, target, 1, label)

    def test_ws_behind_nginx(self):
        self.check(self.client("relay+ws://127.0.0.1:%d" % self.nport), "ws via nginx",
                   self.ws_server)

    def test_pht_behind_nginx(self):
        front = self.client("relay+pht://127.0.0.1:%d?%s" % (self.nport, PHT_PATHS))
        self.check(front, "pht via nginx", self.pht_server)
        # a quiet tunnel survives nginx, and the target's close reaches the client as EOF
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        self.addCleanup(srv.close)

        def late_reply():
            c, _ = srv.accept()
            c.settimeout(10)
            # the relay request travels with the client's first bytes (docs/PROTOCOLS.md
            # "relay: connector")
            c.recv(4)
            time.sleep(2)
            c.sendall(b"late reply")
            c.close()
        threading.Thread(target=late_reply, daemon=True).start()
        s = test_integrity.open_connect_tunnel(self, front, "127.0.0.1:%d" % srv.getsockname()[1])
        try:
            s.sendall(b"ping")
            start = time.monotonic()
            data, closed, _ = gostlib.recv_until_close(s, timeout=15)
            self.assertEqual(data, b"late reply")
            self.assertTrue(closed, "no EOF through pht/nginx after the target closed")
            self.assertLess(time.monotonic() - start, 5, "EOF took too long")
        finally:
            s.close()

if __name__ == "__main__":
    gostlib.main()

"""End-to-end tests of the relay protocol (docs/PROTOCOLS.md "relay"): our relay connector against
our relay server, forward mode, data integrity, golden exchanges on raw sockets, UDP CONNECT /
UDP BIND, bad input, and relay over TLS.

Run: /usr/bin/python3 tests/e2e/test_relay.py <path-to-gost>
"""

import hashlib
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gostlib  # noqa: E402
from gostlib import connect, curl, free_port, free_ports, recv_exact, recv_until_close  # noqa: E402

SIZE = 8 * 1024 * 1024
TRANSFER_TIMEOUT = 90

OK = bytes.fromhex("01000000")
BAD_REQUEST = bytes.fromhex("01010000")
UNAUTHORIZED = bytes.fromhex("01020000")
FORBIDDEN = bytes.fromhex("01030000")
SERVICE_UNAVAILABLE = bytes.fromhex("01050000")
HOST_UNREACHABLE = bytes.fromhex("01060000")
NETWORK_UNREACHABLE = bytes.fromhex("01070000")


# ---- request encoding (independent of the C++ codec) -------------------------------------------

def feat(t, payload):
    return struct.pack("!BH", t, len(payload)) + payload


def f_auth(user, password):
    return feat(1, bytes([len(user)]) + user + bytes([len(password)]) + password)


def f_addr(host, port):
    try:
        return feat(2, b"\x01" + socket.inet_aton(host) + struct.pack("!H", port))
    except OSError:
        h = host.encode()
        return feat(2, b"\x03" + bytes([len(h)]) + h + struct.pack("!H", port))


def f_network(n):
    return feat(4, struct.pack("!H", n))


def request(cmd, *features):
    body = b"".join(features)
    return struct.pack("!BBH", 1, cmd, len(body)) + body


def parse_addr_feature(features):
    """host, port of the address feature in a response's feature bytes."""
    i = 0
    while i + 3 <= len(features):
        t, n = struct.unpack("!BH", features[i:i + 3])
        p = features[i + 3:i + 3 + n]
        i += 3 + n
        if t != 2:
            continue
        if p[0] == 1:
            return socket.inet_ntoa(p[1:5]), struct.unpack("!H", p[5:7])[0]
        if p[0] == 4:
            return socket.inet_ntop(socket.AF_INET6, p[1:17]), struct.unpack("!H", p[17:19])[0]
        return p[2:2 + p[1]].decode(), struct.unpack("!H", p[2 + p[1]:4 + p[1]])[0]
    return None


def read_response(sock, timeout=10):
    head = recv_exact(sock, 4, timeout=timeout)
    if len(head) < 4:
        return head, b""
    n = struct.unpack("!H", head[2:4])[0]
    return head, recv_exact(sock, n, timeout=timeout)


from gostlib import SMUX_FIN, SMUX_PSH, SMUX_SYN, Smux  # noqa: E402


class RelayTest(gostlib.GostTestCase):

    def setUp(self):
        self.echo = self.start_server(gostlib.EchoServer())
        self.origin = self.start_server(gostlib.OriginServer())

    def relay_server(self, query="", auth="user:pass@", name="relay-server", target=""):
        port = free_port()
        url = "relay://%s127.0.0.1:%d%s%s" % (auth, port, target, query)
        g = self.start_gost("-L", url, port=port, name=name)
        time.sleep(0.2)  # the readiness probe's connection is gone
        return g, port

    def raw(self, port, data, timeout=10):
        s = connect(port, timeout=timeout)
        s.sendall(data)
        return s

    def assert_closed_without_data(self, s, timeout=10):
        data, closed, elapsed = recv_until_close(s, timeout=timeout)
        self.assertEqual(data, b"")
        self.assertTrue(closed, "connection not closed")
        return elapsed

    def assert_serves(self, port, auth=(b"user", b"pass")):
        feats = ([f_auth(*auth)] if auth else []) + [f_addr("127.0.0.1", self.echo.port)]
        s = self.raw(port, request(1, *feats) + b"still alive")
        try:
            self.assertEqual(recv_exact(s, 4 + 11), OK + b"still alive")
        finally:
            s.close()

    # -- our connector against our server ------------------------------------------------------

    def test_http_through_relay_chain(self):
        g, b = self.relay_server()
        a = free_port()
        self.start_gost("-L", "http://127.0.0.1:%d" % a, "-F", "relay://user:pass@127.0.0.1:%d" % b,
                        port=a, name="client")
        for tunnel in (False, True):
            r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % a, tunnel=tunnel)
            self.assertEqual((r.rc, r.http_code, r.body), (0, "200", self.origin.body), r)
        r = curl(self.origin.url + "big", proxy="http://127.0.0.1:%d" % a, tunnel=True)
        self.assertEqual((r.rc, r.http_code), (0, "200"), r)
        self.assertEqual(r.body, self.origin.big)
        self.assertAlive(g)

    def test_connector_nodelay_and_server_nodelay(self):
        # relay's `nodelay` is the protocol's, not TCP_NODELAY (docs/PROTOCOLS.md
        # "relay: connector", "relay: handler"): the connector sends its request up front and waits
        # for the response; the server answers at once instead of with the first target bytes. Both
        # are observed: a tap between client and server has the bare request before the tunnel
        # carried a byte, and the tunnel opens to a target that says nothing until spoken to (the
        # echo server), which a server without nodelay would answer only when data arrives — the
        # connector would wait in vain.
        g, b = self.relay_server(query="?nodelay=true")
        tap = self.start_server(gostlib.TapProxy(b))
        a = free_port()
        self.start_gost("-L", "http://127.0.0.1:%d" % a,
                        "-F", "relay://user:pass@127.0.0.1:%d?nodelay=true" % tap.port, port=a,
                        name="client")
        want = request(1, f_auth(b"user", b"pass"), f_addr("127.0.0.1", self.echo.port))
        s = connect(a)
        try:
            s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n"
                       % (self.echo.addr, self.echo.addr)).encode())
            head = recv_exact(s, len(gostlib.RESP_200_CONNECT))
            self.assertEqual(head, gostlib.RESP_200_CONNECT)
            # the tunnel is open and nothing was sent into it: the request went alone
            self.assertEqual(tap.wait_capture(len(want)), want)
            s.sendall(b"after the response")
            self.assertEqual(recv_exact(s, 18), b"after the response")
        finally:
            s.close()
        self.assertEqual(tap.wait_capture(len(want) + 18), want + b"after the response")
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % a, tunnel=True)
        self.assertEqual((r.rc, r.http_code, r.body), (0, "200", self.origin.body), r)

    def test_connector_combined_first_write(self):
        # The client sends request + first payload in one write (docs/PROTOCOLS.md
        # "relay: connector", "relay: golden vectors", vector E); the tap between client and server
        # records exactly that.
        g, b = self.relay_server(auth="")
        tap = self.start_server(gostlib.TapProxy(b))
        a = free_port()
        self.start_gost("-L", "tcp://127.0.0.1:%d/127.0.0.1:%d" % (a, self.echo.port),
                        "-F", "relay://user:pass@127.0.0.1:%d" % tap.port, port=a, name="client")
        time.sleep(0.3)
        s = connect(a)
        try:
            s.sendall(b"hello relay")
            self.assertEqual(recv_exact(s, 11), b"hello relay")
        finally:
            s.close()
        want = request(1, f_auth(b"user", b"pass"), f_addr("127.0.0.1", self.echo.port)) + b"hello relay"
        got = tap.wait_capture_prefix(want)
        self.assertEqual(got[:len(want)], want)

    def test_wrong_credentials(self):
        g, b = self.relay_server()
        a = free_port()
        self.start_gost("-L", "http://127.0.0.1:%d" % a, "-F", "relay://user:wrong@127.0.0.1:%d" % b,
                        port=a, name="client")
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % a, tunnel=True)
        self.assertNotEqual(r.rc, 0, r)
        self.assertNotEqual(r.body, self.origin.body)
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % a)
        self.assertNotEqual(r.body, self.origin.body, r)
        # raw: wrong password / no credentials → 01 02 00 00, then closed
        for feats in ([f_auth(b"user", b"nope")], []):
            s = self.raw(b, request(1, *(feats + [f_addr("127.0.0.1", self.echo.port)])) + b"x")
            try:
                data, closed, _ = recv_until_close(s)
            finally:
                s.close()
            self.assertEqual(data, UNAUTHORIZED)
            self.assertTrue(closed)
        self.assertAlive(g)
        self.assert_serves(b)

    # -- forward mode ----------------------------------------------------------------------------

    def test_forward_mode(self):
        g, b = self.relay_server(auth="", target="/127.0.0.1:%d" % self.echo.port)
        # the requested address is ignored: the service's target is used
        s = self.raw(b, request(1, f_addr("192.0.2.1", 9)) + b"forwarded")
        try:
            self.assertEqual(recv_exact(s, 13), OK + b"forwarded")
        finally:
            s.close()
        # through our connector
        a = free_port()
        self.start_gost("-L", "tcp://127.0.0.1:%d/192.0.2.1:9" % a,
                        "-F", "relay://127.0.0.1:%d" % b, port=a, name="client")
        time.sleep(0.3)
        s = connect(a)
        try:
            s.sendall(b"via connector")
            self.assertEqual(recv_exact(s, 13), b"via connector")
        finally:
            s.close()
        self.assertAlive(g)

    def test_forward_mode_dead_target(self):
        dead = free_port()
        g, b = self.relay_server(auth="", target="/127.0.0.1:%d" % dead)
        s = self.raw(b, request(1) + b"x")
        try:
            data, closed, _ = recv_until_close(s)
        finally:
            s.close()
        self.assertEqual(data, HOST_UNREACHABLE)
        self.assertTrue(closed)
        self.assertAlive(g)

    # -- integrity -----------------------------------------------------------------------------

    def duplex_through(self, port, label):
        duplex = self.start_server(gostlib.DuplexServer(SIZE))
        a = free_port()
        self.start_gost("-L", "tcp://127.0.0.1:%d/%s" % (a, duplex.addr),
                        "-F", "relay://user:pass@127.0.0.1:%d" % port, port=a, name="client-" + label)
        time.sleep(0.5)  # let the readiness probe's tunnel finish
        payload = os.urandom(SIZE)
        sock = connect(a, timeout=TRANSFER_TIMEOUT)
        err = []

        def sender():
            try:
                sock.sendall(payload)
                sock.shutdown(socket.SHUT_WR)
            except OSError as e:
                err.append(e)

        t = threading.Thread(target=sender, daemon=True)
        t.start()
        h = hashlib.sha256()
        total = 0
        try:
            while True:
                d = sock.recv(65536)
                if not d:
                    break
                h.update(d)
                total += len(d)
        finally:
            sock.close()
        t.join(TRANSFER_TIMEOUT)
        self.assertEqual(err, [])
        want = hashlib.sha256(payload).hexdigest()
        rec = duplex.wait_record(lambda r: r["recv_sha"] == want, timeout=TRANSFER_TIMEOUT)
        self.assertIsNotNone(rec, "%s: server did not receive the client's 8 MiB intact" % label)
        self.assertEqual(total, SIZE, label)
        self.assertEqual(h.hexdigest(), rec["sent_sha"], "%s: client got corrupted data" % label)

    def test_8mib_both_directions(self):
        g, b = self.relay_server()
        self.duplex_through(b, "default")
        self.assertAlive(g)

    def test_8mib_both_directions_nodelay(self):
        g, b = self.relay_server(query="?nodelay=true")
        # the server is in nodelay mode: its response comes at once, before any target byte
        # (the echo target sends nothing until spoken to)
        s = self.raw(b, request(1, f_auth(b"user", b"pass"), f_addr("127.0.0.1", self.echo.port)))
        try:
            self.assertEqual(recv_exact(s, 4), OK)
        finally:
            s.close()
        self.duplex_through(b, "nodelay")
        self.assertAlive(g)

    # -- golden exchanges on a raw socket --------------------------------------------------------

    def test_golden_exchange(self):
        g, b = self.relay_server(auth="")
        # request + payload in one write (example E); the response comes with the first echo bytes
        req = request(1, f_addr("127.0.0.1", self.echo.port))
        self.assertEqual(req[:4], bytes.fromhex("0101000a"))
        s = self.raw(b, req + b"GET / HTTP/1.1\r\n")
        try:
            self.assertEqual(recv_exact(s, 4 + 16), OK + b"GET / HTTP/1.1\r\n")
            s.sendall(b"more")
            self.assertEqual(recv_exact(s, 4), b"more")
            s.shutdown(socket.SHUT_WR)
            rest, closed, _ = recv_until_close(s)
            self.assertEqual(rest, b"")
            self.assertTrue(closed)
        finally:
            s.close()
        # nothing is answered before the target sends something
        s = self.raw(b, req)
        try:
            s.settimeout(0.5)
            with self.assertRaises(socket.timeout):
                s.recv(16)
            s.settimeout(10)
            s.sendall(b"hi")
            self.assertEqual(recv_exact(s, 6), OK + b"hi")
        finally:
            s.close()
        # CMD 0x00 is CONNECT too; unknown feature types are skipped; last address wins
        s = self.raw(b, request(0, feat(0x09, b"\xaa\xbb"), f_addr("192.0.2.1", 1),
                                f_addr("127.0.0.1", self.echo.port)) + b"x")
        try:
            self.assertEqual(recv_exact(s, 5), OK + b"x")
        finally:
            s.close()
        for data, want in [
            (request(1), BAD_REQUEST),                                        # no address
            (request(3, f_addr("127.0.0.1", self.echo.port)), BAD_REQUEST),   # ASSOCIATE
            (request(5, f_addr("127.0.0.1", self.echo.port)), BAD_REQUEST),   # unknown CMD
            (request(2, f_network(0), f_addr("0.0.0.0", 0)), FORBIDDEN),      # bind=false
            (request(1, f_addr("127.0.0.1", free_port())), NETWORK_UNREACHABLE),
        ]:
            s = self.raw(b, data)
            try:
                got, closed, _ = recv_until_close(s)
            finally:
                s.close()
            self.assertEqual(got, want, data.hex())
            self.assertTrue(closed, data.hex())
        self.assertAlive(g)

    def test_golden_nodelay(self):
        g, b = self.relay_server(auth="", query="?nodelay=true")
        s = self.raw(b, request(1, f_addr("127.0.0.1", self.echo.port)))
        try:
            self.assertEqual(recv_exact(s, 4), OK)  # at once, before any data
            s.sendall(b"ping")
            self.assertEqual(recv_exact(s, 4), b"ping")
        finally:
            s.close()

    def test_target_closes_without_data(self):
        # default mode: the response rides on the first target bytes; none → closed, no response
        silent = socket.socket()
        silent.bind((gostlib.LOOPBACK, 0))
        silent.listen(4)
        self.addCleanup(silent.close)
        g, b = self.relay_server(auth="")
        s = self.raw(b, request(1, f_addr("127.0.0.1", silent.getsockname()[1])))
        try:
            c, _ = silent.accept()
            c.close()
            self.assert_closed_without_data(s)
        finally:
            s.close()
        self.assertAlive(g)

    # -- UDP -------------------------------------------------------------------------------------

    def test_udp_connect(self):
        udp = gostlib.UdpEchoServer()
        self.addCleanup(udp.close)
        g, b = self.relay_server(auth="")
        for cmd, feats in ((0x81, [f_network(1)]), (0x01, [f_network(1)]), (0x81, [])):
            s = self.raw(b, request(cmd, *(feats + [f_addr("127.0.0.1", udp.port)])) + b"\x00\x03abc")
            try:
                self.assertEqual(recv_exact(s, 4 + 2 + 8), OK + b"\x00\x08echo:abc")
                s.sendall(b"\x00\x02xy\x00\x01z")  # two datagrams in one write
                self.assertEqual(recv_exact(s, 9 + 8), b"\x00\x07echo:xy\x00\x06echo:z")
            finally:
                s.close()
        self.assertAlive(g)

    def test_udp_bind_association(self):
        udp = gostlib.UdpEchoServer()
        self.addCleanup(udp.close)
        g, b = self.relay_server(auth="", query="?bind=true")
        # GOST 3.2.6's form: empty domain, port 0 (docs/PROTOCOLS.md "relay: golden vectors", I)
        for addr in (f_addr("0.0.0.0", 0), feat(2, b"\x03\x00\x00\x00")):
            s = self.raw(b, request(0x82, f_network(1), addr))
            try:
                head, feats = read_response(s)
                self.assertEqual(head[:2], b"\x01\x00")
                host, port = parse_addr_feature(feats)
                self.assertEqual(host, "::")
                self.assertNotEqual(port, 0)
                frame = b"\x00\x03\xff\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", udp.port)
                s.sendall(frame + b"abc")
                want = (b"\x00\x08\xff\x01" + socket.inet_aton("127.0.0.1") +
                        struct.pack("!H", udp.port) + b"echo:abc")
                self.assertEqual(recv_exact(s, len(want)), want)
            finally:
                s.close()
        self.assertAlive(g)

    def test_udp_connect_through_relay_chain(self):
        # relay server A with a chain to relay server B: A dials "udp" through our connector,
        # which sends UDP CONNECT (0x81) to B (docs/PROTOCOLS.md "relay: connector", LEN-framed
        # datagrams).
        udp = gostlib.UdpEchoServer()
        self.addCleanup(udp.close)
        g, b = self.relay_server()
        a = free_port()
        self.start_gost("-L", "relay://127.0.0.1:%d" % a, "-F", "relay://user:pass@127.0.0.1:%d" % b,
                        port=a, name="relay-front")
        time.sleep(0.2)
        s = self.raw(a, request(0x81, f_network(1), f_addr("127.0.0.1", udp.port)) + b"\x00\x03abc")
        try:
            self.assertEqual(recv_exact(s, 4 + 2 + 8), OK + b"\x00\x08echo:abc")
            s.sendall(b"\x00\x01z")
            self.assertEqual(recv_exact(s, 8), b"\x00\x06echo:z")
        finally:
            s.close()
        self.assertAlive(g)

    def test_socks5_udp_associate_through_relay_hop(self):
        # socks5 UDP ASSOCIATE on the entry node; the relay connector opens the UDP association
        # (01 82 ..., a UDP BIND on 0.0.0.0:0, docs/PROTOCOLS.md "relay: connector") on a bind=true
        # relay server.
        udp = gostlib.UdpEchoServer()
        self.addCleanup(udp.close)
        g, b = self.relay_server(query="?bind=true")
        sp = free_port()
        self.start_gost("-L", "socks5://127.0.0.1:%d?udp=true" % sp,
                        "-F", "relay://user:pass@127.0.0.1:%d" % b, port=sp, name="socks5-entry")
        c = connect(sp)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(u.close)
        try:
            c.sendall(b"\x05\x01\x00")
            self.assertEqual(recv_exact(c, 2), b"\x05\x00")
            c.sendall(b"\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00")
            rep = recv_exact(c, 10)
            self.assertEqual(rep[:4], b"\x05\x00\x00\x01", rep)
            bnd_port = struct.unpack("!H", rep[8:10])[0]
            u.settimeout(10)
            dst = b"\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", udp.port)
            u.sendto(b"\x00\x00\x00" + dst + b"hello", ("127.0.0.1", bnd_port))
            data, _ = u.recvfrom(65536)
            self.assertEqual(data, b"\x00\x00\x00" + dst + b"echo:hello")
        finally:
            c.close()
        self.assertAlive(g)

    # -- TCP BIND: smux v1 session, the server opens the streams (docs/PROTOCOLS.md
    # "relay: framing")

    def tcp_bind(self, query="?bind=true"):
        g, b = self.relay_server(auth="", query=query)
        s = self.raw(b, request(2, f_network(0), f_addr("127.0.0.1", 0)))
        head, feats = read_response(s)
        self.assertEqual(head[:2], b"\x01\x00")
        self.assertEqual(feats[:4], bytes.fromhex("02000701"))  # address feature, IPv4
        host, port = parse_addr_feature(feats)
        self.assertEqual(host, "127.0.0.1")
        return g, s, port

    def test_tcp_bind_smux(self):
        g, s, port = self.tcp_bind()
        mux = Smux(s)
        try:
            peer = connect(port)
            peer.sendall(b"mux!")
            # golden: SYN for stream 3, then the response with the peer address in its own PSH
            self.assertEqual(mux.read_frame(), (1, SMUX_SYN, 3, b""))
            pport = struct.pack("!H", peer.getsockname()[1])
            self.assertEqual(mux.read_frame(),
                             (1, SMUX_PSH, 3, bytes.fromhex("0100000a020007017f000001") + pport))
            mux.pump_until(lambda: mux.data.get(3, b"") == b"mux!")
            mux.send(SMUX_PSH, 3, b"back")
            self.assertEqual(recv_exact(peer, 4), b"back")
            # a second inbound connection gets stream 5
            peer2 = connect(port)
            mux.pump_until(lambda: 5 in mux.syn)
            mux.pump_until(lambda: len(mux.data.get(5, b"")) >= 14)
            pport2 = struct.pack("!H", peer2.getsockname()[1])
            self.assertEqual(mux.data[5], bytes.fromhex("0100000a020007017f000001") + pport2)
            # the inbound side closing → FIN on its stream
            peer.close()
            mux.pump_until(lambda: 3 in mux.fin)
            # FIN from the client → the inbound connection sees EOF after the data
            mux.send(SMUX_PSH, 5, b"last words")
            mux.send(SMUX_FIN, 5)
            data, closed, _ = recv_until_close(peer2)
            self.assertEqual((data, closed), (b"last words", True))
            peer2.close()
            # a stream opened by the client is refused with a FIN
            mux.send(SMUX_SYN, 2)
            mux.pump_until(lambda: 2 in mux.fin)
            # still serving
            peer3 = connect(port)
            mux.pump_until(lambda: 7 in mux.syn)
            peer3.close()
        finally:
            s.close()
        # the end of the session closes the listener
        deadline = time.time() + 10
        while time.time() < deadline and not gostlib.port_closed_for_connect(port):
            time.sleep(0.1)
        self.assertTrue(gostlib.port_closed_for_connect(port))
        self.assertAlive(g)

    def test_tcp_bind_smux_bulk(self):
        g, s, port = self.tcp_bind("?bind=true&mux.maxReceiveBuffer=65536&mux.maxFrameSize=4096")
        mux = Smux(s)
        size = 2 * 1024 * 1024
        up = os.urandom(size)
        down = os.urandom(size)
        try:
            peer = connect(port, timeout=30)
            mux.pump_until(lambda: len(mux.data.get(3, b"")) >= 14)
            hlen = len(mux.data[3])
            got = {}

            def reader():
                got["down"] = recv_exact(peer, size, timeout=TRANSFER_TIMEOUT)

            t = threading.Thread(target=reader)
            t.start()
            for i in range(0, size, 30000):   # mux → inbound, frames bigger than the server's
                mux.send(SMUX_PSH, 3, down[i:i + 30000])
            peer.sendall(up)
            mux.pump_until(lambda: len(mux.data[3]) >= hlen + size, timeout=TRANSFER_TIMEOUT)
            t.join(TRANSFER_TIMEOUT)
            self.assertEqual(hashlib.sha256(mux.data[3][hlen:]).hexdigest(),
                             hashlib.sha256(up).hexdigest())
            self.assertEqual(hashlib.sha256(got.get("down", b"")).hexdigest(),
                             hashlib.sha256(down).hexdigest())
            self.assertLessEqual(max(len(f[3]) for f in mux.frames if f[1] == SMUX_PSH), 4096)
            peer.close()
        finally:
            s.close()
        self.assertAlive(g)

    def test_tcp_bind_listen_failure(self):
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        try:
            g, b = self.relay_server(auth="", query="?bind=true")
            s = self.raw(b, request(2, f_network(0), f_addr("127.0.0.1", busy.getsockname()[1])))
            data, closed, _ = recv_until_close(s)
            s.close()
            self.assertEqual((data, closed), (SERVICE_UNAVAILABLE, True))
        finally:
            busy.close()
        self.assertAlive(g)

    def test_mux_options_rejected(self):
        for q in ("?bind=true&mux.version=2", "?bind=true&mux.type=yamux"):
            port = free_port()
            p = self.start_gost("-L", "relay://127.0.0.1:%d%s" % (port, q), port=port,
                                name="relay-mux", wait=False)
            p.expected_exit = True
            rc = p.wait_exit(10)
            self.assertNotEqual(rc, 0)
            self.assertIn("not supported by this implementation", p.stderr_text())
            self.assertIn(q.split("&")[1].split("=")[0], p.stderr_text())

    # -- bad input ---------------------------------------------------------------------------------

    def test_bad_input(self):
        g, b = self.relay_server(query="?readTimeout=2s")
        cases = [
            b"\x00\x01\x02\x03 garbage \xff\xfe",      # VER 0
            b"\x02\x01\x00\x00",                       # VER 2
            request(1, f_addr("127.0.0.1", 1))[:-3],   # truncated, then EOF below
            b"\x01\x01\x00\x05\x02\x00\x09\x01\x7f",   # feature overruns FEALEN
            b"\x01\x01\x00\x04\x02\x00\x01\x09",       # bad address feature
        ]
        for data in cases:
            s = self.raw(b, data)
            try:
                s.shutdown(socket.SHUT_WR)
                self.assert_closed_without_data(s)
            finally:
                s.close()
        # silence and a truncated request without EOF: closed by readTimeout (2s)
        for data in (b"", request(1, f_auth(b"user", b"pass"), f_addr("127.0.0.1", 1))[:9]):
            s = connect(b, timeout=10)
            try:
                if data:
                    s.sendall(data)
                elapsed = self.assert_closed_without_data(s, timeout=10)
                self.assertGreater(elapsed, 1.0)
                self.assertLess(elapsed, 6.0)
            finally:
                s.close()
        # a large random blob
        s = self.raw(b, b"\x01\x01\xff\xff" + os.urandom(1 << 17))
        try:
            data, closed, _ = recv_until_close(s, timeout=10)
            self.assertEqual(data, b"")
            self.assertTrue(closed)
        finally:
            s.close()
        self.assertAlive(g)
        self.assert_serves(b)

    # -- relay over TLS ----------------------------------------------------------------------------

    def test_relay_over_tls(self):
        b = free_port()
        g = self.start_gost("-L", "relay+tls://user:pass@127.0.0.1:%d" % b, port=b, name="relay-tls")
        a = free_port()
        self.start_gost("-L", "http://127.0.0.1:%d" % a,
                        "-F", "relay+tls://user:pass@127.0.0.1:%d" % b, port=a, name="client")
        r = curl(self.origin.url, proxy="http://127.0.0.1:%d" % a, tunnel=True)
        self.assertEqual((r.rc, r.http_code, r.body), (0, "200", self.origin.body), r)
        r = curl(self.origin.url + "big", proxy="http://127.0.0.1:%d" % a)
        self.assertEqual((r.rc, r.http_code), (0, "200"), r)
        self.assertEqual(r.body, self.origin.big)
        # the server speaks TLS: a plain relay request gets no relay answer
        s = self.raw(b, request(1, f_auth(b"user", b"pass"), f_addr("127.0.0.1", self.echo.port)) + b"x")
        try:
            data, _, _ = recv_until_close(s, timeout=10)
        finally:
            s.close()
        self.assertFalse(data.startswith(OK), data)
        self.assertAlive(g)


if __name__ == "__main__":
    gostlib.main()

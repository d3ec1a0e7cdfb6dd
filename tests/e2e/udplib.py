"""UDP and QUIC helpers for the HTTP/3 end-to-end tests (test_h3.py).

* readiness of a UDP listener (the socket shows up in /proc/net/udp, owned by the process),
* LossyUdpRelay: an in-process relay that drops and reorders datagrams both ways,
* hand-made QUIC v1 packets (RFC 9000 §17, RFC 9001 §5): Version Negotiation probes, junk
  Initials, short-header packets, and real client Initials carrying a TLS 1.3 ClientHello
  (needs python3-cryptography; `have_crypto()` says whether it is there),
* process probes (VmRSS, open descriptors),
* a runner for Debian's ngtcp2 example HTTP/3 client (`gtlsclient`, package ngtcp2-client).

Only loopback addresses are used; every wait is bounded.
"""

import hashlib
import hmac
import os
import random
import re
import select
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time

QUIC_V1 = 0x00000001
INITIAL_SALT_V1 = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")


# --------------------------------------------------------------------------
# ports, readiness, process probes
# --------------------------------------------------------------------------

def free_udp_port():
    """A UDP port that is free on 127.0.0.1 right now."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def _socket_inodes(pid):
    out = set()
    d = "/proc/%d/fd" % pid
    try:
        names = os.listdir(d)
    except OSError:
        return out
    for n in names:
        try:
            link = os.readlink(os.path.join(d, n))
        except OSError:
            continue
        if link.startswith("socket:["):
            out.add(link[8:-1])
    return out


def udp_bound(pid, port):
    """True if process pid owns a UDP socket bound to `port`."""
    inodes = _socket_inodes(pid)
    return any(p == port and inode in inodes for p, inode in _udp_table())


def _udp_table():
    """[(local port, inode)] of every UDP socket of this network namespace."""
    out = []
    for path in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(path) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) >= 10:
                out.append((int(parts[1].rsplit(":", 1)[1], 16), parts[9]))
    return out


def udp_ports(pid):
    """Local ports of the UDP sockets process pid holds."""
    inodes = _socket_inodes(pid)
    return sorted({port for port, inode in _udp_table() if inode in inodes})


def udp_socket_count(pid):
    """Number of UDP sockets (any port) the process holds."""
    inodes = _socket_inodes(pid)
    return sum(1 for _, inode in _udp_table() if inode in inodes)


def wait_udp_bound(proc, port, timeout=10.0):
    """Wait until the subprocess.Popen `proc` owns a UDP socket on port. True/False."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if udp_bound(proc.pid, port):
            return True
        time.sleep(0.05)
    return False


def rss_kib(pid):
    """Resident set size of `pid` in KiB. Raises (never 0) when it cannot be read, so that a
    growth check on a vanished process fails instead of comparing zeros."""
    with open("/proc/%d/status" % pid) as f:
        m = re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M)
    if not m:
        raise AssertionError("no VmRSS in /proc/%d/status (process gone?)" % pid)
    return int(m.group(1))


def fd_count(pid):
    """Open file descriptors of `pid`. Raises (never -1) when /proc/<pid>/fd cannot be read."""
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError as e:
        raise AssertionError("cannot count the fds of %d: %r" % (pid, e))


# --------------------------------------------------------------------------
# a lossy, reordering UDP relay
# --------------------------------------------------------------------------

class LossyUdpRelay:
    """Listens on 127.0.0.1:port; every client address gets its own upstream socket to
    127.0.0.1:target_port. Each datagram, either way, is dropped with probability `drop`, or
    held back with probability `reorder` and sent right after the next datagram of that
    direction (or after `hold_max` seconds if no next one comes)."""

    def __init__(self, target_port, drop=0.03, reorder=0.03, seed=None, hold_max=0.02):
        self.target = ("127.0.0.1", target_port)
        self.drop = drop
        self.reorder = reorder
        self.hold_max = hold_max
        self.seed = seed if seed is not None else random.randrange(1 << 30)
        self.rng = random.Random(self.seed)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.upstreams = {}    # client addr -> upstream socket
        self.clients = {}      # upstream socket fileno -> (socket, client addr)
        self.held = {}         # direction key -> (datagram, out socket, addr, held since)
        self.stats = {"forwarded": 0, "dropped": 0, "reordered": 0, "bytes": 0}
        self.lock = threading.Lock()
        self.stopped = False
        r, self._wake = os.pipe()
        self._wake_r = r
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def close(self):
        self.stopped = True
        try:
            os.write(self._wake, b"x")
        except OSError:
            pass
        self.thread.join(5)
        self.sock.close()
        for s in list(self.upstreams.values()):
            s.close()
        os.close(self._wake)
        os.close(self._wake_r)

    def inject_to_clients(self, data):
        """Sends `data` to every client seen so far, from the address they talk to (a connected
        client socket accepts it). Returns the number of clients."""
        addrs = list(self.upstreams)
        for addr in addrs:
            self._send(self.sock, data, addr)
        return len(addrs)

    def _send(self, out, data, addr):
        try:
            out.sendto(data, addr)
        except OSError:
            pass

    def _route(self, key, data, out, addr):
        with self.lock:
            r = self.rng.random()
            if r < self.drop:
                self.stats["dropped"] += 1
                return
            self.stats["forwarded"] += 1
            self.stats["bytes"] += len(data)
            held = self.held.pop(key, None)
            if held is None and r < self.drop + self.reorder:
                self.stats["reordered"] += 1
                self.held[key] = (data, out, addr, time.monotonic())
                return
        self._send(out, data, addr)
        if held is not None:
            self._send(held[1], held[0], held[2])

    def _flush_old(self):
        now = time.monotonic()
        with self.lock:
            old = [k for k, v in self.held.items() if now - v[3] >= self.hold_max]
            items = [self.held.pop(k) for k in old]
        for data, out, addr, _ in items:
            self._send(out, data, addr)

    def _loop(self):
        while not self.stopped:
            socks = [self.sock, self._wake_r] + [v[0] for v in self.clients.values()]
            try:
                ready, _, _ = select.select(socks, [], [], self.hold_max / 2)
            except (OSError, ValueError):
                return
            for s in ready:
                if s is self._wake_r:
                    return
                for _ in range(64):  # drain a little per wake-up
                    try:
                        data, addr = s.recvfrom(65535, socket.MSG_DONTWAIT)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break
                    if s is self.sock:
                        up = self.upstreams.get(addr)
                        if up is None:
                            up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                            up.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
                            up.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
                            up.bind(("127.0.0.1", 0))
                            self.upstreams[addr] = up
                            self.clients[up.fileno()] = (up, addr)
                        self._route(("up", addr), data, up, self.target)
                    else:
                        _, caddr = self.clients[s.fileno()]
                        self._route(("down", caddr), data, self.sock, caddr)
            self._flush_old()


# --------------------------------------------------------------------------
# QUIC packets by hand
# --------------------------------------------------------------------------

def varint(n):
    if n < 0x40:
        return struct.pack(">B", n)
    if n < 0x4000:
        return struct.pack(">H", n | 0x4000)
    if n < 0x40000000:
        return struct.pack(">I", n | 0x80000000)
    return struct.pack(">Q", n | 0xC000000000000000)


def long_header_probe(version, dcid, scid, size=1200, first=0xC0):
    """A long-header packet of `version` (body random), padded to `size` bytes."""
    head = bytes([first]) + struct.pack(">I", version) + bytes([len(dcid)]) + dcid + \
        bytes([len(scid)]) + scid
    return head + os.urandom(max(0, size - len(head)))


def parse_version_negotiation(data):
    """(dcid, scid, [versions]) of a Version Negotiation packet, or None if it is not one."""
    if len(data) < 7 or not data[0] & 0x80 or data[1:5] != b"\0\0\0\0":
        return None
    i = 5
    dl = data[i]
    dcid = data[i + 1:i + 1 + dl]
    i += 1 + dl
    if i >= len(data):
        return None
    sl = data[i]
    scid = data[i + 1:i + 1 + sl]
    i += 1 + sl
    rest = data[i:]
    if len(dcid) != dl or len(scid) != sl or len(rest) % 4 or not rest:
        return None
    return dcid, scid, [struct.unpack(">I", rest[j:j + 4])[0] for j in range(0, len(rest), 4)]


def junk_initial(dcid=None, scid=None, size=1200):
    """A QUIC v1 Initial by its header (type 0, version 1, token length 0, Length covering the
    rest) whose protected payload is random: it can never be decrypted."""
    dcid = dcid if dcid is not None else os.urandom(random.randint(8, 20))
    scid = scid if scid is not None else os.urandom(8)
    head = bytes([0xC3]) + struct.pack(">I", QUIC_V1) + bytes([len(dcid)]) + dcid + \
        bytes([len(scid)]) + scid + varint(0)
    rest = size - len(head) - 2
    return head + struct.pack(">H", 0x4000 | rest) + os.urandom(rest)


def short_header_packet(size):
    """A short-header (1-RTT-looking) packet: fixed bit set, random rest — what a stateless reset
    looks like (RFC 9000 §10.3)."""
    return bytes([0x40 | (os.urandom(1)[0] & 0x3F)]) + os.urandom(size - 1)


def long_header_type(data):
    """0 Initial, 1 0-RTT, 2 Handshake, 3 Retry, 'vn', 'short', or None."""
    if not data:
        return None
    if not data[0] & 0x80:
        return "short"
    if len(data) >= 5 and data[1:5] == b"\0\0\0\0":
        return "vn"
    return (data[0] >> 4) & 0x03


# ---- real client Initials (RFC 9001 §5) -----------------------------------

def have_crypto():
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: F401
        return True
    except ImportError:
        return False


def hkdf_extract(salt, ikm):
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def hkdf_expand_label(secret, label, context, length):
    full = b"tls13 " + label
    info = struct.pack(">H", length) + bytes([len(full)]) + full + bytes([len(context)]) + context
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(secret, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:length]


def client_initial_keys(dcid):
    """(secret, key, iv, hp) of the client's Initial packets for the original DCID."""
    initial = hkdf_extract(INITIAL_SALT_V1, dcid)
    secret = hkdf_expand_label(initial, b"client in", b"", 32)
    return (secret, hkdf_expand_label(secret, b"quic key", b"", 16),
            hkdf_expand_label(secret, b"quic iv", b"", 12),
            hkdf_expand_label(secret, b"quic hp", b"", 16))


def _ext(typ, body):
    return struct.pack(">HH", typ, len(body)) + body


def client_hello(scid, alpn=b"h3"):
    """A TLS 1.3 ClientHello as a QUIC client sends it: x25519 key share, ALPN, and the
    quic_transport_parameters extension with initial_source_connection_id = scid."""
    tp = b""
    for pid, val in ((0x01, varint(30000)), (0x04, varint(1 << 20)), (0x05, varint(1 << 18)),
                     (0x06, varint(1 << 18)), (0x07, varint(1 << 18)), (0x08, varint(100)),
                     (0x09, varint(100))):
        tp += varint(pid) + varint(len(val)) + val
    tp += varint(0x0F) + varint(len(scid)) + scid
    groups = struct.pack(">HHH", 4, 0x001D, 0x0017)
    sigs = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601, 0x0807]
    sigalgs = struct.pack(">H", 2 * len(sigs)) + b"".join(struct.pack(">H", s) for s in sigs)
    share = struct.pack(">HH", 0x001D, 32) + os.urandom(32)
    alpn_list = bytes([len(alpn)]) + alpn
    exts = (_ext(10, groups) + _ext(13, sigalgs) + _ext(43, b"\x02\x03\x04") +
            _ext(45, b"\x01\x01") + _ext(51, struct.pack(">H", len(share)) + share) +
            _ext(16, struct.pack(">H", len(alpn_list)) + alpn_list) + _ext(0x39, tp))
    body = (b"\x03\x03" + os.urandom(32) + b"\x00" + struct.pack(">H", 6) +
            b"\x13\x01\x13\x02\x13\x03" + b"\x01\x00" + struct.pack(">H", len(exts)) + exts)
    return b"\x01" + struct.pack(">I", len(body))[1:] + body


def protect_initial(dcid, scid, payload, pn=0, size=1200, token=b""):
    """A client Initial (4-byte packet number) carrying `payload` frames, padded with PADDING
    frames so that the datagram is `size` bytes, encrypted and header-protected (RFC 9001 §5)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    _, key, iv, hp = client_initial_keys(dcid)
    head0 = bytes([0xC3]) + struct.pack(">I", QUIC_V1) + bytes([len(dcid)]) + dcid + \
        bytes([len(scid)]) + scid + varint(len(token)) + token
    pad = size - (len(head0) + 2 + 4 + len(payload) + 16)
    if pad > 0:
        payload += b"\x00" * pad
    length = 4 + len(payload) + 16
    header = head0 + struct.pack(">H", 0x4000 | length) + struct.pack(">I", pn)
    nonce = bytes(a ^ b for a, b in zip(iv, pn.to_bytes(12, "big")))
    ct = AESGCM(key).encrypt(nonce, payload, header)
    enc = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()
    mask = enc.update(ct[:16]) + enc.finalize()
    pn_off = len(header) - 4
    out = bytearray(header + ct)
    out[0] ^= mask[0] & 0x0F
    for i in range(4):
        out[pn_off + i] ^= mask[1 + i]
    return bytes(out)


def real_initial(dcid=None, scid=None, alpn=b"h3", size=1200):
    """A complete, decryptable client Initial with a ClientHello in a CRYPTO frame."""
    dcid = dcid if dcid is not None else os.urandom(8)
    scid = scid if scid is not None else os.urandom(8)
    ch = client_hello(scid, alpn)
    frames = b"\x06" + varint(0) + varint(len(ch)) + ch
    return protect_initial(dcid, scid, frames, size=size)


def recv_all(sock, window, maxlen=65535):
    """Every datagram that arrives on sock within `window` seconds: [(time, data)]."""
    out = []
    deadline = time.monotonic() + window
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return out
        sock.settimeout(left)
        try:
            d, _ = sock.recvfrom(maxlen)
        except socket.timeout:
            return out
        except OSError:
            return out
        out.append((time.monotonic(), d))


def udp_client(timeout=2.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(timeout)
    return s


# --------------------------------------------------------------------------
# gtlsclient (Debian ngtcp2-client): an independent HTTP/3 client
# --------------------------------------------------------------------------

GTLSCLIENT = shutil.which("gtlsclient") or "/usr/bin/gtlsclient"


def have_gtlsclient():
    return os.access(GTLSCLIENT, os.X_OK)


class H3Response:
    def __init__(self, rc, status, headers, body, log):
        self.rc = rc
        self.status = status
        self.headers = headers  # [(name, value)] in order
        self.body = body
        self.log = log

    def header(self, name):
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def __repr__(self):
        return "H3Response(rc=%r, status=%r, headers=%r, body=%r, log tail=%r)" % (
            self.rc, self.status, self.headers, self.body[:200], self.log[-1500:])


class GtlsRequest:
    """One HTTP/3 request with gtlsclient running in the background; `timeout` is also the QUIC
    idle timeout, after which gtlsclient gives up on a response that does not end."""

    def __init__(self, port, path, method="GET", data=None, timeout=10, host="127.0.0.1"):
        self.dir = tempfile.mkdtemp(prefix="gost-e2e-h3c-")
        self.timeout = timeout
        cmd = [GTLSCLIENT, "--exit-on-all-streams-close", "--no-quic-dump",
               "--timeout=%ds" % timeout, "-m", method]
        if data:  # gtlsclient cannot mmap an empty file: no --data = an empty body
            dp = os.path.join(self.dir, "data")
            with open(dp, "wb") as f:
                f.write(data)
            cmd.append("--data=" + dp)
        cmd += [host, str(port), "https://%s:%d%s" % (host, port, path)]
        self.log_path = os.path.join(self.dir, "log")
        self._log = open(self.log_path, "wb")
        self.start = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_for(self, pattern, timeout=10):
        """True once the output so far matches the regular expression `pattern`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.log(), re.M):
                return True
            if self.proc.poll() is not None:
                return bool(re.search(pattern, self.log(), re.M))
            time.sleep(0.05)
        return False

    def finish(self):
        """Waits for gtlsclient to end (killed after timeout + 5 s); the response of stream 0."""
        try:
            rc = self.proc.wait(timeout=max(0.1, self.start + self.timeout + 5 - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        self.elapsed = time.monotonic() - self.start
        self._log.close()
        log = self.log()
        shutil.rmtree(self.dir, ignore_errors=True)
        headers = re.findall(r"^http: stream 0x0 \[([^:\]]*|:[a-z]+): (.*)\]$", log, re.M)
        status = None
        for k, v in headers:
            if k == ":status":
                status = int(v)
        # the body as gtlsclient dumps it: "00000000  68 65 6c 6c 6f 0a    |hello.|"
        body = b"".join(bytes.fromhex(m) for m in
                        re.findall(r"^[0-9a-f]{8}  ([0-9a-f ]+?) *\|.*\|$", log, re.M))
        return H3Response(rc, status, headers, body, log)


def gtls_request(port, path, method="GET", data=None, timeout=10, host="127.0.0.1"):
    """One HTTP/3 request with gtlsclient; the response of stream 0."""
    return GtlsRequest(port, path, method, data, timeout, host).finish()

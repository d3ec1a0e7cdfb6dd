"""2,000 tunnels opened at once through each multiplexing transport: every one intact (issue 16).

Each tunnel sends 64 KiB of random bytes through `-L tcp://… -F relay+X://server` to an echo
target and reads them back (checksum compared). The server's metrics must count exactly 2,000
requests (so every tunnel went through it) and no refused stream. bench/burst.py is the same code
at 9,000 with memory figures.
"""
import os
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "bench"))
sys.path.insert(0, HERE)
import burst  # noqa: E402
import gostlib  # noqa: E402

N = 2000


class BurstTest(gostlib.GostTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        have = burst.raise_nofile(4 * N + 1024)
        if have < 4 * N + 1024:
            raise unittest.SkipTest("RLIMIT_NOFILE %d is too low for %d tunnels" % (have, N))

    def check(self, name):
        with tempfile.TemporaryDirectory(prefix="gost-e2e-burst-") as tmp:
            r = burst.run_transport(gostlib.GOST_BIN, name, N, 64 * 1024, 0.0, tmp, timeout=120.0)
            detail = "%s: %r" % (name, r)
            self.assertEqual(r["intact"], N, detail)
            self.assertEqual(r["failures"], {}, detail)
            self.assertEqual(r["server_requests"], N, detail)
            self.assertEqual(r["server_refused"], 0, detail)

    def test_mws(self):
        self.check("mws")

    def test_mwss(self):
        self.check("mwss")

    def test_h2(self):
        self.check("h2")

    def test_h2c(self):
        self.check("h2c")

    def test_grpc(self):
        self.check("grpc")

    def test_http2(self):
        self.check("http2")

    def test_h3(self):
        self.check("h3")

    def test_masque(self):
        self.check("masque")

    def test_wt(self):
        self.check("wt")


if __name__ == "__main__":
    gostlib.main()

"""What the transport tests (mws, h2, http2, grpc, ...) share: the targets every one of them
tunnels to, and the exchanges of the integrity and concurrency tests (8 MiB both ways, half-close,
a batch of concurrent tunnels), reused as they are.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gostlib  # noqa: E402
import test_concurrency  # noqa: E402
import test_integrity  # noqa: E402


class TransportTestCase(gostlib.GostTestCase):
    duplex_exchange = test_integrity.IntegrityTest.duplex_exchange
    half_close_exchange = test_integrity.IntegrityTest.half_close_exchange
    both_ways_and_half_close = test_integrity.IntegrityTest.both_ways_and_half_close
    run_connect_batch = test_concurrency.ConcurrencyTest.run_connect_batch
    check_batch = test_concurrency.ConcurrencyTest.check_batch

    def setUp(self):
        self.origin = self.start_server(gostlib.OriginServer())
        self.duplex = self.start_server(gostlib.DuplexServer(test_integrity.SIZE))
        self.half_reply = os.urandom(test_integrity.HALF_SIZE)
        self.halfsrv = self.start_server(gostlib.ReplyAfterEOFServer(self.half_reply))
        self.echo = self.start_server(gostlib.EchoServer())

    def assert_through(self, server, target, n=1, label=""):
        """The server (not just the client) carried n tunnels to `target`: checks the bytes went
        through it, which the integrity checks alone (bytes right, server alive) do not."""
        gostlib.assert_tunnels_through(self, server, target, n, label)

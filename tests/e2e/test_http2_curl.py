"""curl --proxy-http2 (HTTP/2 to an HTTPS proxy) against the http2 proxy listener (docs/PROTOCOLS.md
"http2"). In a file of its own: Debian 12's curl (7.88) has no --proxy-http2 (curl >= 8.1), and a
skipped test makes its whole file "Not Run" in ctest, so only this check is, not test_http2.py.
That skip is the one gostlib.ALLOWED_SKIPS allows in strict mode (GOST_TEST_STRICT=1).
Run: /usr/bin/python3 tests/e2e/test_http2_curl.py <path-to-gost>
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gostlib  # noqa: E402
import test_http2  # noqa: E402
import transportlib  # noqa: E402
from gostlib import curl  # noqa: E402

USER, PASS = test_http2.USER, test_http2.PASS


class CurlProxyHttp2Test(transportlib.TransportTestCase):
    server = test_http2.Http2Test.server

    def test_curl_proxy_http2(self):
        help_text = subprocess.run([gostlib.CURL, "--help", "all"], capture_output=True, text=True,
                                   stdin=subprocess.DEVNULL, timeout=30).stdout
        if "--proxy-http2" not in help_text:
            gostlib.allowed_skip(self, "curl-proxy-http2")
        srv, server = self.server()
        r = curl(self.origin.url, proxy="https://%s:%s@127.0.0.1:%d" % (USER, PASS, srv),
                 tunnel=True, extra=("--proxy-http2", "--proxy-insecure"))
        self.assertEqual((r.rc, r.http_code, r.body), (0, "200", self.origin.body), r)
        self.assertEqual(len(self.origin.requests), 1, self.origin.requests)
        self.assertAlive(server)


if __name__ == "__main__":
    gostlib.main()

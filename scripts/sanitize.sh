#!/bin/sh
# Builds gost with AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/) and runs end-to-end
# test files on it; every report (LeakSanitizer's at exit too) fails the test whose process wrote
# it (tests/e2e/gostlib.py sanitizer_reports). Usage: scripts/sanitize.sh [test_x ...]
# (default: the relay, forwarding, reload and UDP files).
set -eu
cd "$(dirname "$0")/.."
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DGOST_SANITIZE=address,undefined >/dev/null
cmake --build build-asan --target gost
logs=$(mktemp -d)
export ASAN_OPTIONS="detect_leaks=1:log_path=$logs/asan"
export UBSAN_OPTIONS="print_stacktrace=1:log_path=$logs/ubsan"
[ $# -gt 0 ] || set -- test_relay test_forward test_mux_refused test_reload_api test_udp test_rtcp test_socks5
rc=0
for t in "$@"; do
  echo "== $t"
  /usr/bin/python3 "tests/e2e/$t.py" build-asan/gost || rc=1
done
rm -rf "$logs"
exit $rc

#!/bin/sh
# Builds every libFuzzer target in tests/fuzz (clang, ASan+UBSan) and runs each for SECONDS
# (default 60). Usage: scripts/fuzz.sh [SECONDS] [TARGET...]   e.g. scripts/fuzz.sh 600 http
# Crashes are written to build-fuzz/<target>/crash-*; the corpus grows in build-fuzz/<target>/corpus.
set -eu
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-60}"
[ $# -gt 0 ] && shift
CXX="${FUZZ_CXX:-clang++-14}"
command -v "$CXX" >/dev/null || CXX=clang++
OUT=build-fuzz
mkdir -p "$OUT"
targets="$*"
[ -z "$targets" ] && targets=$(ls tests/fuzz/fuzz_*.cpp | sed 's|.*/fuzz_||; s|\.cpp$||')
for t in $targets; do
  src="tests/fuzz/fuzz_$t.cpp"
  # proto/ holds only pure codecs (no I/O, no dependencies beyond the standard library and Boost
  # headers; core/address is the one helper they share), so every target links all of them.
  # proto/ws hashes the handshake key with OpenSSL's SHA-1: libcrypto.
  # http2_server drives our nghttp2 server session (net/http2), which needs a little of core/,
  # config/model (its options) and libnghttp2 besides.
  # Without UBSan: clang 14 fails on coroutines under it ("Cannot represent a difference across
  # sections").
  extra=""
  san="fuzzer,address,undefined"
  case "$t" in
    http2*) extra="src/net/http2.cpp src/core/stream.cpp src/core/buffer_pool.cpp \
      src/config/model.cpp src/config/go_text.cpp -lnghttp2 -lfmt"
      san="fuzzer,address" ;;
  esac
  mkdir -p "$OUT/$t/corpus"
  # shellcheck disable=SC2086 # $extra is a word list
  "$CXX" -std=c++20 -O1 -g -fsanitize="$san" -fno-sanitize-recover=undefined \
    -Isrc "$src" src/proto/*.cpp src/core/address.cpp $extra -lcrypto -o "$OUT/$t/fuzz"
  echo "fuzz $t: ${SECONDS_PER_TARGET}s"
  (cd "$OUT/$t" && ./fuzz -max_total_time="$SECONDS_PER_TARGET" -max_len=70000 -print_final_stats=0 \
     -close_fd_mask=3 corpus)
done

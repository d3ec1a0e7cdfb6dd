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
# Each source is compiled on its own (through ccache when there is one) into
# build-fuzz/obj/<sanitizers>/: what several targets link (src/proto, core/address ...) is compiled
# once per run and sanitizer set, and, with ccache, not again unless it or a header changed.
# CI builds in a fresh clone each time: the cache must not depend on where that is.
CCACHE=""
command -v ccache >/dev/null && CCACHE=ccache
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}" CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"
OUT=build-fuzz
mkdir -p "$OUT"
targets="$*"
[ -z "$targets" ] && targets=$(ls tests/fuzz/fuzz_*.cpp | sed 's|.*/fuzz_||; s|\.cpp$||')
compiled=" "  # objects compiled in this run
for t in $targets; do
  src="tests/fuzz/fuzz_$t.cpp"
  # proto/ holds only pure codecs (no I/O, no dependencies beyond the standard library and Boost
  # headers; core/address is the one helper they share), so every target links all of them.
  # proto/ws hashes the handshake key with OpenSSL's SHA-1: libcrypto.
  # http2_server drives our nghttp2 server session (net/http2), which needs a little of core/,
  # config/model (its options) and libnghttp2 besides.
  # quic_server drives our QUIC + HTTP/3 server (net/quic), which needs net/tls (the default
  # certificate), net/udp, net/http2 (h2_header), a little of core/ and config/, and ngtcp2,
  # nghttp3 and GnuTLS besides (not instrumented: coverage is that of our code).
  # Without UBSan: clang 14 fails on coroutines under it ("Cannot represent a difference across
  # sections").
  srcs=""
  libs=""
  san="fuzzer,address,undefined"
  # api_json drives the config loader and printer (the web API's request bodies): yaml-cpp, and
  # Boost.JSON compiled into config/json_check.
  case "$t" in
    api_json) srcs="src/config/loader.cpp src/config/json_check.cpp src/config/model.cpp \
      src/config/go_text.cpp src/config/printer.cpp"
      libs="-lyaml-cpp -lfmt" ;;
    limiter) srcs="src/policy/limiter.cpp" ;;
    policy) srcs="src/policy/ip.cpp src/policy/bypass.cpp src/policy/admission.cpp \
      src/policy/hosts.cpp"
      libs="-lfmt" ;;
    http2*) srcs="src/net/http2.cpp src/core/stream.cpp src/core/buffer_pool.cpp \
      src/config/model.cpp src/config/go_text.cpp"
      libs="-lnghttp2 -lfmt"
      san="fuzzer,address" ;;
    quic*) srcs="src/net/quic.cpp src/net/quic_client.cpp src/net/quic_connection.cpp \
      src/net/quic_connection_send.cpp src/net/quic_request_stream.cpp src/net/quic_server.cpp \
      src/net/quic_webtransport.cpp src/net/quic_datagram.cpp \
      src/net/quic_udp_port.cpp src/net/tls.cpp src/net/udp.cpp src/net/http2.cpp \
      src/core/log.cpp src/core/log_file.cpp src/core/stream.cpp src/core/tcp_stream.cpp src/core/metrics.cpp \
      src/core/buffer_pool.cpp src/config/model.cpp \
      src/config/go_text.cpp"
      libs="-lngtcp2 -lngtcp2_crypto_gnutls -lnghttp3 -lnghttp2 -lgnutls -lssl -lfmt -lz"
      san="fuzzer,address" ;;
  esac
  objdir="$OUT/obj/$(echo "$san" | tr , -)"
  mkdir -p "$objdir" "$OUT/$t/corpus"
  objs=""
  for f in "$src" src/proto/*.cpp src/core/address.cpp $srcs; do
    o="$objdir/$(echo "$f" | tr / _).o"
    case "$compiled" in
      *" $o "*) ;;
      *) $CCACHE "$CXX" -std=c++20 -O1 -g -fsanitize="$san" -fno-sanitize-recover=undefined \
           -Isrc -c "$f" -o "$o"
         compiled="$compiled$o " ;;
    esac
    objs="$objs $o"
  done
  # shellcheck disable=SC2086 # $objs and $libs are word lists
  "$CXX" -fsanitize="$san" $objs $libs -lcrypto -o "$OUT/$t/fuzz"
  # Seeds, where a target has them: tests/fuzz/corpus/<target>/ (read, never written).
  seeds=""
  [ -d "tests/fuzz/corpus/$t" ] && seeds="../../tests/fuzz/corpus/$t"
  echo "fuzz $t: ${SECONDS_PER_TARGET}s"
  # shellcheck disable=SC2086 # $seeds is empty or one directory
  (cd "$OUT/$t" && ./fuzz -max_total_time="$SECONDS_PER_TARGET" -max_len=70000 -print_final_stats=0 \
     -close_fd_mask=3 corpus $seeds)
done

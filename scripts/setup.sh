#!/bin/sh
# Installs the Debian 12 packages needed to build, test and benchmark gost. Idempotent; run as root
# (or with sudo available). systemd is there for systemd-analyze (tests/e2e/test_packaging.py);
# installing it does not make it the init system (systemd-sysv does). man-db: `systemd-analyze
# verify` runs `man 1 gost` for the unit's Documentation=man:gost(1), and the man page test renders
# gost.1 with man (a minimal Debian 12 has no man). Every tool the tests use is here: CI runs them
# with GOST_TEST_STRICT=1, where a test skipped for a missing one fails.
set -eu
PKGS="build-essential cmake ninja-build ccache pkg-config
libboost1.81-dev libboost-url1.81-dev libssl-dev libyaml-cpp-dev libfmt-dev
libgtest-dev googletest curl iperf3 nginx-light wrk procps python3-socks python3-websockets openssl
clang libclang-rt-14-dev libnghttp2-dev python3-h2 nghttp2-client python3-grpcio
libngtcp2-dev libngtcp2-crypto-gnutls-dev libnghttp3-dev libgnutls28-dev ngtcp2-client python3-cryptography
systemd man-db prometheus zlib1g-dev libhiredis-dev redis-server haproxy
chromium"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing

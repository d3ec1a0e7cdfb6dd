#!/bin/sh
# Installs what is missing, builds, and runs the whole test suite (unit + end-to-end).
set -eu
cd "$(dirname "$0")/.."
./scripts/setup.sh
cmake -S . -B build -G Ninja
cmake --build build
cd build && ctest --output-on-failure -j"$(nproc)" "$@"

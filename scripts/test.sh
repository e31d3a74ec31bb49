#!/usr/bin/env bash
# The test command (README, .ci/run): setup, format check, then every suite twice — a release
# build and an AddressSanitizer + UndefinedBehaviorSanitizer build (leak detection on).
#   scripts/test.sh          everything
#   scripts/test.sh --fast   release build, suites labelled `fast` only (for the edit loop)
set -euo pipefail
cd "$(dirname "$0")/.."

FAST=0
if [ "${1:-}" = "--fast" ]; then FAST=1; fi
JOBS="$(nproc)"

bash scripts/setup.sh

echo "== release build"
cmake --preset default >/dev/null
cmake --build --preset default -j "$JOBS"

echo "== format check"
cmake --build --preset default --target format-check

if [ "$FAST" = 1 ]; then
  ctest --preset default -L fast -j "$JOBS"
  exit 0
fi

echo "== tests (release)"
ctest --preset default -j "$JOBS"

echo "== sanitizer build"
cmake --preset asan >/dev/null
cmake --build --preset asan -j "$JOBS"
echo "== tests (ASan + UBSan)"
ctest --preset asan -j "$JOBS"

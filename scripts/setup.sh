#!/usr/bin/env bash
# Installs everything the build and the tests need on Debian 12: system packages, the Python
# virtual environment of the interop suite. Idempotent and non-interactive; safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Debian packages: toolchain, libraries, formatting, test peers.
PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libcurl4-openssl-dev libboost-dev libssl-dev nlohmann-json3-dev libcxxopts-dev
  libgtest-dev googletest clang-format-14 openssl curl
  python3 python3-venv python3-pip
)
# Go builds the benchmark's baseline client; machines that already have a Go toolchain keep it.
if ! command -v go >/dev/null 2>&1; then PACKAGES+=(golang-go); fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: Debian packages present"
fi

# Interop suite: Livepeer's Python trickle clients (pytrickle) in a private venv.
VENV=tests/interop/.venv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
stamp="$VENV/.requirements.sha256"
want="$(cat tests/interop/requirements*.txt | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing interop Python packages"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r tests/interop/requirements.txt
  if [ -f tests/interop/requirements-nodeps.txt ]; then
    "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps \
      -r tests/interop/requirements-nodeps.txt
  fi
  echo "$want" > "$stamp"
else
  echo "setup: interop venv up to date"
fi
echo "setup: done"

#!/usr/bin/env bash
# Installs everything the build and the tests need on Debian 12: system packages, the Python
# virtual environments of the interop and ClickHouse suites. Idempotent and non-interactive;
# safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Debian packages: toolchain, libraries, formatting, test peers.
PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libcurl4-openssl-dev libboost-dev libssl-dev nlohmann-json3-dev libcxxopts-dev
  libgtest-dev googletest clang-format-14 openssl curl librdkafka-dev
  python3 python3-venv python3-pip python3-jsonschema
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev ffmpeg
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-libav
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libyaml-cpp-dev
)
# Go builds the benchmark's baseline client, Java and Maven run the tests' Kafka broker;
# machines that already have these toolchains keep them.
if ! command -v go >/dev/null 2>&1; then PACKAGES+=(golang-go); fi
if ! command -v java >/dev/null 2>&1; then PACKAGES+=(openjdk-17-jre-headless); fi
if ! command -v mvn >/dev/null 2>&1; then PACKAGES+=(maven); fi

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
# ClickHouse DDL suite: chDB (ClickHouse as a Python library) in a private venv.
CHVENV=tests/clickhouse/.venv
if [ ! -x "$CHVENV/bin/python" ]; then
  python3 -m venv "$CHVENV"
fi
chstamp="$CHVENV/.requirements.sha256"
chwant="$(sha256sum tests/clickhouse/requirements.txt | cut -d' ' -f1)"
if [ ! -f "$chstamp" ] || [ "$(cat "$chstamp")" != "$chwant" ]; then
  echo "setup: installing ClickHouse suite Python packages (chDB)"
  "$CHVENV/bin/pip" install -q --disable-pip-version-check -r tests/clickhouse/requirements.txt
  echo "$chwant" > "$chstamp"
else
  echo "setup: ClickHouse suite venv up to date"
fi
# Apache Kafka broker for the tests: artifacts from Maven Central into tests/kafka/.libs.
KLIBS=tests/kafka/.libs
kstamp="$KLIBS/.pom.sha256"
kwant="$(sha256sum tests/kafka/pom.xml | cut -d' ' -f1)"
if [ ! -f "$kstamp" ] || [ "$(cat "$kstamp")" != "$kwant" ]; then
  echo "setup: fetching the Kafka broker from Maven Central"
  rm -rf "$KLIBS"
  mvn -q -B -f tests/kafka/pom.xml dependency:copy-dependencies -DoutputDirectory="$PWD/$KLIBS"
  echo "$kwant" > "$kstamp"
else
  echo "setup: Kafka broker artifacts present"
fi
echo "setup: done"

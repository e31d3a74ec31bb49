#!/usr/bin/env bash
# NVDEC check for a GPU machine: ffmpeg's own CUDA decode of a generated clip, then our media
# tests for the decoder backends (nvdec must be chosen and decode). Builds nothing.
# Usage: tests/gpu/nvdec_check.sh [build_dir]   (default: build; needs media_test built there)
set -euo pipefail

build_dir="${1:-build}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || echo "nvidia-smi: none"

echo "== ffmpeg -hwaccel cuda"
ffmpeg -hide_banner -loglevel error -nostdin -f lavfi -i testsrc2=size=512x512:rate=24 -t 5 \
  -c:v libx264 -preset ultrafast -bf 0 -g 24 -f mpegts "$work/clip.ts"
ffmpeg -hide_banner -loglevel error -nostdin -hwaccel cuda -hwaccel_output_format cuda \
  -i "$work/clip.ts" -f null - && echo "ffmpeg nvdec: ok"

echo "== media_test: decoder backends"
# The nvdec test skips (with its reason) when no CUDA device opens: make that a failure here.
out="$work/media_test.log"
"$build_dir/bin/media_test" --gtest_filter='MediaDecoderBackend.*' | tee "$out"
if grep -q '\[  SKIPPED \] MediaDecoderBackend.nvdec' "$out"; then
  echo "FAIL: the nvdec test was skipped: no CUDA device seen by libavcodec" >&2
  exit 1
fi
echo "nvdec check: ok"

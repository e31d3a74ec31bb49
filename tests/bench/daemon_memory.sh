#!/usr/bin/env bash
# Daemon memory over accelerated rounds (a benchmark, not a test): `naap-loadtest run` with a
# 30 s period against three emulators (healthy, crashing runner, no capacity), sampling the
# daemon's resident memory at the end of every round. Flat memory = the last rounds' RSS stays
# within a few percent of the first completed round's.
#   tests/bench/daemon_memory.sh [ROUNDS] [BIN_DIR]      (defaults: 6, build/bin)
set -euo pipefail
rounds=${1:-6}
bin=${2:-build/bin}/naap-loadtest
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

"$bin" emulate --port 0 --load-time 0.5 >"$work/e1.log" 2>&1 & pids+=($!)
"$bin" emulate --port 0 --load-time 0.5 --fault crash_after_s=3 >"$work/e2.log" 2>&1 & pids+=($!)
"$bin" emulate --port 0 --model noop:capacity=0 >"$work/e3.log" 2>&1 & pids+=($!)
addr() { for _ in $(seq 100); do a=$(grep -o 'address=[^ ]*' "$1" | head -1 | cut -d= -f2); [[ -n $a ]] && { echo "$a"; return; }; sleep 0.1; done; }
a1=$(addr "$work/e1.log"); a2=$(addr "$work/e2.log"); a3=$(addr "$work/e3.log")
cat >"$work/naap.yaml" <<YAML
gateway_id: mem-bench
region: BENCH
state_dir: $work/state
round:
  period: 30s
concurrency: 3
discovery:
  static: ["$a1", "$a2", "$a3"]
  refresh: 10s
tests:
  - pipeline: noop
    duration: 8s
    prompt_interval: 3s
decoder: software
sinks:
  events: jsonl:$work/events.jsonl
ops:
  listen: 127.0.0.1:0
YAML
"$bin" run --config "$work/naap.yaml" >"$work/daemon.log" 2>&1 & daemon=$!; pids+=($daemon)
rss() { awk '/VmRSS/ {print $2}' "/proc/$daemon/status"; }
echo "round  rss_kib  sessions  events"
first=""
seen=0
while (( seen < rounds )); do
  sleep 1
  kill -0 "$daemon" 2>/dev/null || { echo "daemon died"; tail -20 "$work/daemon.log"; exit 1; }
  n=$(grep -c 'event=round_completed' "$work/daemon.log" || true)
  if (( n > seen )); then
    seen=$n
    r=$(rss)
    [[ -z $first ]] && first=$r
    printf "%5d  %7d  %8d  %6d\n" "$seen" "$r" "$(grep -c 'event=session_ended' "$work/daemon.log")" \
      "$(wc -l <"$work/events.jsonl")"
  fi
done
last=$(rss)
kill -TERM "$daemon"; wait "$daemon" || true
awk -v a="$first" -v b="$last" 'BEGIN { printf "rss after round %d / after round 1: %.3f\n", '"$rounds"', b / a }'

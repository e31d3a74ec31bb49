#!/usr/bin/env bash
# The NaaP contract end to end: naap-loadtest bench --emulated (normal, runner crash, no capacity,
# refused start) writes its events through the spool to a JSONL file exactly as they would go to
# Kafka; validate_events.py checks every envelope against reports/schemas and EVENTS.md.
#   event_contract.sh NAAP_LOADTEST_BIN SOURCE_DIR
set -uo pipefail
bin=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0

# run NAME EXPECTED_EXIT [bench flags...]: runs bench, then validate with the remaining --require
# and --forbid flags given after "--".
check() {
  local name=$1 expected=$2
  shift 2
  local bench=() validate=()
  while [[ $# -gt 0 && $1 != "--" ]]; do bench+=("$1"); shift; done
  [[ $# -gt 0 ]] && shift
  validate=("$@")
  "$bin" bench --emulated --quiet --region test --gateway-id contract-gw \
    --events "jsonl:$work/$name.jsonl" --json "$work/$name.record.json" "${bench[@]}" \
    >"$work/$name.out" 2>&1
  local code=$?
  if [[ $code -ne $expected ]]; then
    echo "FAIL $name: bench exited $code, expected $expected"
    tail -20 "$work/$name.out"
    failed=1
    return
  fi
  if ! python3 "$src/tests/contract/validate_events.py" --schemas "$src/reports/schemas" \
      --record "$work/$name.record.json" "$work/$name.jsonl" "${validate[@]}"; then
    echo "FAIL $name: events violate the contract"
    failed=1
    return
  fi
  echo "ok   $name"
}

common=(--require stream_trace/gateway_receive_stream_request
        --require synthetic_test_result/session_result --require synthetic_test_result/run_summary)
streamed=(--require stream_trace/gateway_send_first_ingest_segment
          --require stream_trace/gateway_receive_first_processed_segment
          --require stream_trace/gateway_ingest_stream_closed
          --require stream_trace/runner_send_first_processed_segment)

check normal 0 --duration 8 --prompt-interval 3 -- "${common[@]}" "${streamed[@]}" \
  --require stream_trace/gateway_receive_few_processed_segments \
  --require ai_stream_events/params_update --forbid ai_stream_events/error \
  --forbid stream_trace/gateway_no_orchestrators_available
check runner_crash 1 --duration 8 --emulator-fault crash_after_s=3 -- "${common[@]}" \
  "${streamed[@]}" --require ai_stream_events/error
check no_capacity 3 --duration 4 --emulator-fault start_status=503 -- "${common[@]}" \
  --require stream_trace/gateway_no_orchestrators_available --require ai_stream_events/error \
  --forbid stream_trace/gateway_send_first_ingest_segment
check start_refused 3 --duration 4 --emulator-fault start_status=500 -- "${common[@]}" \
  --require ai_stream_events/error --forbid stream_trace/gateway_no_orchestrators_available

# The refused start is charged to the orchestrator: its error event names it; the excused one's
# does not (the validator already checks that excused sessions name no orchestrator anywhere).
python3 - "$work/start_refused.jsonl" <<'PY' || failed=1
import json, sys
errors = [json.loads(l)["data"] for l in open(sys.argv[1]) if '"ai_stream_events"' in l]
charged = [e for e in errors if e.get("type") == "error" and e.get("orchestrator_info", {}).get("url")]
if not charged:
    sys.exit("FAIL start_refused: no error event names the orchestrator that refused the start")
print("ok   start_refused error charged to " + charged[0]["orchestrator_info"]["url"])
PY
# The same envelopes through deploy/clickhouse's tables and views (chDB, when setup made its venv).
python=$src/tests/clickhouse/.venv/bin/python
if [[ -x $python ]]; then
  cat "$work"/*.jsonl >"$work/all.events"
  if NAAP_EVENTS_JSONL="$work/all.events" "$python" -m pytest -q -p no:cacheprovider \
      "$src/tests/clickhouse" -k test_real_events_file >"$work/clickhouse.out" 2>&1; then
    echo "ok   clickhouse: every event landed, every session_result typed"
  else
    echo "FAIL clickhouse: the events did not load"
    tail -30 "$work/clickhouse.out"
    failed=1
  fi
else
  echo "skip clickhouse: $python missing (run scripts/setup.sh)"
fi
exit $failed

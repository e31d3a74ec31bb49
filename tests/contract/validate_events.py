#!/usr/bin/env python3
"""Checks naap-loadtest events against our JSON Schemas and the NaaP analytics contract.

    validate_events.py --schemas reports/schemas EVENTS.jsonl [--record RUN_RECORD.json]
                       [--require FAMILY[/SUBTYPE] ...] [--forbid FAMILY[/SUBTYPE] ...]

Each line of EVENTS.jsonl is one envelope as a Kafka consumer would read it. Checked:
  * the envelope and its data against reports/schemas (per family, per data.type);
  * NaaP's contract (EVENTS.md §2, §3, §5): accepted families and stream_trace subtypes, both
    session ids on every session event and unchanged within a session, synthetic tags on every
    event (each element of array payloads), excused sessions never naming an orchestrator;
  * --require / --forbid: families or family/subtype that must (not) appear.
Prints a per-family summary; exits 1 naming every violation with its line number.
"""
import argparse
import collections
import json
import pathlib
import sys
import warnings

import jsonschema

NAAP_FAMILIES = {"stream_trace", "ai_stream_status", "ai_stream_events", "stream_ingest_metrics",
                 "network_capabilities", "discovery_results", "create_new_payment"}
OUR_FAMILIES = {"synthetic_test_result"}
NAAP_TRACES = {"gateway_receive_stream_request", "gateway_send_first_ingest_segment",
               "gateway_receive_first_processed_segment", "gateway_receive_few_processed_segments",
               "gateway_receive_first_data_segment", "gateway_ingest_stream_closed",
               "gateway_no_orchestrators_available", "orchestrator_swap",
               "runner_receive_first_ingest_segment", "runner_send_first_processed_segment"}
# Forwarded from the runner as go-livepeer does; NaaP ignores it (EVENTS.md §5.2).
IGNORED_TRACES = {"runner_receive_stream_request"}


def load_schemas(folder):
    schemas = {}
    for path in pathlib.Path(folder).glob("*.schema.json"):
        schemas[path.name] = json.loads(path.read_text())
    return schemas


class Checker:
    def __init__(self, schemas):
        self.schemas = schemas
        self.store = {s["$id"]: s for s in schemas.values()}
        base = schemas["envelope.schema.json"]["$id"].rsplit("/", 1)[0] + "/"
        for name, s in schemas.items():
            self.store[base + name] = s
        self.errors = []

    def validate(self, instance, schema_name, where):
        schema = self.schemas[schema_name]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            resolver = jsonschema.RefResolver.from_schema(schema, store=self.store)
            validator = jsonschema.Draft202012Validator(
                schema, resolver=resolver, format_checker=jsonschema.FormatChecker())
            for error in sorted(validator.iter_errors(instance), key=lambda e: list(e.path)):
                path = "/".join(str(p) for p in error.absolute_path) or "(root)"
                self.errors.append(f"{where}: {schema_name} at {path}: {error.message[:300]}")

    def fail(self, where, message):
        self.errors.append(f"{where}: {message}")


def data_schema(family, data):
    if family == "stream_trace":
        return "stream_trace.schema.json"
    if family == "ai_stream_status":
        return "ai_stream_status.schema.json"
    if family == "ai_stream_events":
        return "ai_stream_events.schema.json"
    if family == "discovery_results":
        return "discovery_results.schema.json"
    if family == "network_capabilities":
        return "network_capabilities.schema.json"
    if family == "synthetic_test_result" and isinstance(data, dict):
        return {"session_result": "session_result.schema.json",
                "run_summary": "run_summary.schema.json"}.get(data.get("type"))
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemas", required=True)
    parser.add_argument("--record", action="append", default=[])
    parser.add_argument("--require", action="append", default=[])
    parser.add_argument("--forbid", action="append", default=[])
    parser.add_argument("events", nargs="+")
    args = parser.parse_args()

    checker = Checker(load_schemas(args.schemas))
    seen = collections.Counter()
    sessions = {}  # request_id -> stream_id
    excused = set()  # request_ids whose session_result is excused_no_capacity
    named = collections.defaultdict(list)  # request_id -> lines naming an orchestrator
    ids = collections.Counter()
    lines = 0
    for events_path in args.events:
        for number, line in enumerate(open(events_path, encoding="utf-8"), 1):
            if not line.strip():
                continue
            lines += 1
            where = f"{events_path}:{number}"
            try:
                envelope = json.loads(line)
            except json.JSONDecodeError as e:
                checker.fail(where, f"not JSON: {e}")
                continue
            checker.validate(envelope, "envelope.schema.json", where)
            if not isinstance(envelope, dict) or "data" not in envelope:
                continue
            family, data = envelope.get("type"), envelope["data"]
            ids[envelope.get("id")] += 1
            subtype = data.get("type") if isinstance(data, dict) else None
            seen[family] += 1
            if subtype:
                seen[f"{family}/{subtype}"] += 1
            if family not in NAAP_FAMILIES | OUR_FAMILIES:
                checker.fail(where, f"family {family!r} is neither NaaP's nor ours")
            if family == "stream_trace" and subtype not in NAAP_TRACES | IGNORED_TRACES:
                checker.fail(where, f"stream_trace subtype {subtype!r} is not accepted by NaaP")
            if isinstance(data, dict) and data.get("client_source") == "scope":
                checker.fail(where, "client_source must not be 'scope'")
            schema = data_schema(family, data)
            if schema is None:
                checker.fail(where, f"no schema for {family}/{subtype}")
            else:
                checker.validate(data, schema, where)
            if isinstance(data, dict) and "request_id" in data:
                rid, sid = data.get("request_id"), data.get("stream_id")
                if sessions.setdefault(rid, sid) != sid:
                    checker.fail(where, f"stream_id changed within session {rid}: "
                                        f"{sessions[rid]!r} then {sid!r}")
                info = data.get("orchestrator_info")
                if isinstance(info, dict) and (info.get("address") or info.get("url")):
                    named[rid].append(where)
                if subtype == "session_result" and data.get("outcome") == "excused_no_capacity":
                    excused.add(rid)
    for rid in excused:
        for where in named[rid]:
            checker.fail(where, f"session {rid} was excused (no capacity) but this event names "
                                "an orchestrator: NaaP would charge it")
    for item in args.require:
        if seen[item] == 0:
            checker.fail("(all events)", f"required {item} never appeared")
    for item in args.forbid:
        if seen[item] > 0:
            checker.fail("(all events)", f"forbidden {item} appeared {seen[item]} times")
    for path in args.record:
        checker.validate(json.loads(pathlib.Path(path).read_text()), "run_record.schema.json", path)

    duplicates = sum(n - 1 for n in ids.values() if n > 1)
    print(f"{lines} events, {len(sessions)} sessions, {duplicates} duplicate ids")
    for key in sorted(seen):
        print(f"  {seen[key]:5d}  {key}")
    if checker.errors:
        print(f"{len(checker.errors)} violations:", file=sys.stderr)
        for e in checker.errors:
            print("  " + e, file=sys.stderr)
        return 1
    print("all events valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())

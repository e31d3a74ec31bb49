#!/usr/bin/env python3
"""Trickle transport benchmark: our publisher against a Go net/http publisher (not a test).

Builds the Go baseline (tests/bench/go-baseline), starts one `naap-loadtest trickle serve`
(--autocreate) on 127.0.0.1, then runs both publishers alternately, several rounds each, every
run on a fresh channel from seq 0, and prints a table with the medians and the ratios ours/go for
throughput (MB/s) and CPU seconds per MB (each publisher's own getrusage).

Both publishers send the same bytes for (seed, seq) and keep the next POST preconnected. The Go
one waits for each POST's answer before the next segment, as go-livepeer's blocking Write does
(--go-max-inflight changes that); ours (`naap-loadtest trickle publish`) lets up to 3 segments
be unanswered. Both send in writes of --chunk bytes.

By default no subscriber reads the channels: the numbers are the publisher plus the server's
ingest, which is what differs between the two. --subscriber adds our subscriber on every channel
(data flows end to end) and checks the digest of each segment it received against the
publisher's. On a 2-core machine the subscriber competes with the publisher and the server for
CPU, so expect lower and noisier throughput in that mode.

Exit status: 0 unless something failed (a build, a run, a digest); never because of a ratio.

    python3 tests/bench/trickle_bench.py [--rounds 3] [--segments 200] [--size 1048576]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
GO_DIR = HERE / "go-baseline"
BASE_PATH = "/ai/trickle/"
SUMMARY = re.compile(r"^summary .*$", re.M)


def parse_summary(text: str) -> dict[str, str]:
    m = None
    for m in SUMMARY.finditer(text):
        pass
    if not m:
        return {}
    return dict(kv.split("=", 1) for kv in m.group(0).split()[1:] if "=" in kv)


def read_digests(path: Path) -> dict[int, tuple[int, str]]:
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            seq, size, sha = line.split()
            out[int(seq)] = (int(size), sha)
    return out


def http_request(port: int, method: str, path: str, headers: dict | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, BASE_PATH + path, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def build_go(out_dir: Path) -> Path:
    go = shutil.which("go")
    if not go:
        raise SystemExit("trickle_bench: the Go toolchain (go) is not on PATH")
    exe = out_dir / "gobaseline"
    env = dict(os.environ, GOTOOLCHAIN="local", CGO_ENABLED="0")
    r = subprocess.run([go, "build", "-o", str(exe), "."], cwd=GO_DIR, env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"trickle_bench: go build failed\n{r.stdout}{r.stderr}")
    return exe


class Server:
    def __init__(self, naap: Path, tmp: Path):
        port_file = tmp / "server.port"
        self.log = open(tmp / "server.log", "wb")
        self.p = subprocess.Popen(
            [str(naap), "trickle", "serve", "--listen", "127.0.0.1:0", "--port-file",
             str(port_file), "--autocreate", "--log-level", "warn"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not port_file.exists():
            if self.p.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("trickle_bench: the server did not start")
            time.sleep(0.02)
        self.port = int(port_file.read_text().strip())

    def url(self, channel: str) -> str:
        return f"http://127.0.0.1:{self.port}{BASE_PATH}{channel}"

    def stop(self) -> int:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return -9


def run_one(impl: str, label: str, args, naap: Path, gobin: Path, srv: Server, tmp: Path,
            segments: int) -> dict:
    channel = f"bench-{impl}-{label}"
    url = srv.url(channel)
    pub_d, sub_d = tmp / f"{channel}.pub", tmp / f"{channel}.sub"
    sub = None
    if args.subscriber:
        # Create the channel first (POST {ch}, honoured with --autocreate): a GET for an unknown
        # channel is a 404. The subscriber then waits for seq 0.
        status = http_request(srv.port, "POST", channel, {"Expect-Content": "video/MP2T"})
        if status != 200:
            return {"impl": impl, "label": label, "ok": False,
                    "error": f"POST {channel} (create): {status}", "wall_s": float("nan"),
                    "mb_per_s": float("nan"), "cpu_s": float("nan"),
                    "cpu_s_per_mb": float("nan"), "max_rss_kib": float("nan")}
        sub = subprocess.Popen(
            [str(naap), "trickle", "subscribe", url, "--start-seq", "0", "--digests", str(sub_d),
             "--timeout-s", str(args.timeout_s), "--log-level", "warn"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(0.2)
    if impl == "ours":
        cmd = [str(naap), "trickle", "publish", url, "--segments", str(segments), "--size",
               str(args.size), "--chunk", str(args.chunk), "--seed", "7", "--no-close",
               "--digests", str(pub_d), "--timeout-s", str(args.timeout_s), "--log-level", "warn"]
    else:
        cmd = [str(gobin), "-url", url, "-segments", str(segments), "-size", str(args.size),
               "-chunk", str(args.chunk), "-seed", "7", "-digests", str(pub_d),
               "-timeout", f"{args.timeout_s}s", "-max-inflight", str(args.go_max_inflight)]
    # Started through a forking shell: Linux carries a process's peak RSS across execve, so a
    # child exec'd straight from this Python process would report Python's RSS as its own
    # max_rss_kib. The shell's child starts from the shell's small footprint instead.
    cmd = ["/bin/sh", "-c", '"$@"; exit $?', "sh", *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout_s + 30)
    s = parse_summary(r.stdout)
    row = {"impl": impl, "label": label, "ok": r.returncode == 0 and bool(s) and
           s.get("completed") == str(segments), "error": ""}
    if not row["ok"]:
        row["error"] = f"{impl} publisher rc={r.returncode}: {r.stdout[-800:]}{r.stderr[-800:]}"
    for k in ("wall_s", "mb_per_s", "cpu_s", "cpu_s_per_mb", "max_rss_kib"):
        row[k] = float(s.get(k, "nan"))
    # Ends the channel; a subscriber still waiting for the next seq sees the close.
    status = http_request(srv.port, "DELETE", channel)
    if status != 200 and row["ok"]:
        row["ok"], row["error"] = False, f"DELETE {channel}: {status}"
    if sub:
        try:
            out, _ = sub.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            sub.kill()
            out, _ = sub.communicate()
        got, want = read_digests(sub_d), read_digests(pub_d)
        bad = [f"seq {q}: got {v[0]} B, published {want[q][0] if q in want else '?'} B"
               for q, v in sorted(got.items()) if want.get(q) != v]
        row["sub_segments"] = len(got)
        if sub.returncode != 0 or bad or not got:
            row["ok"] = False
            row["error"] += f" subscriber rc={sub.returncode} digest mismatches at {bad[:10]}" \
                            f"\n{out[-800:]}"
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--segments", type=int, default=200)
    ap.add_argument("--size", type=int, default=1 << 20, help="bytes per segment")
    ap.add_argument("--chunk", type=int, default=64 * 1024, help="bytes per write, both publishers")
    ap.add_argument("--warmup-segments", type=int, default=20,
                    help="one untimed run of each publisher first (0 = none)")
    ap.add_argument("--subscriber", action="store_true",
                    help="read every channel with our subscriber and verify its digests")
    ap.add_argument("--go-max-inflight", type=int, default=1,
                    help="Go publisher: segments in flight at once (1 = go-livepeer's blocking Write)")
    ap.add_argument("--timeout-s", type=int, default=120)
    ap.add_argument("--bin-dir", default=os.environ.get("NAAP_BIN_DIR", str(REPO / "build" / "bin")))
    args = ap.parse_args()

    naap = Path(args.bin_dir) / "naap-loadtest"
    if not naap.exists():
        print(f"trickle_bench: {naap} not found (build target naap-loadtest or set NAAP_BIN_DIR)",
              file=sys.stderr)
        return 2

    ncpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    tmp = Path(tempfile.mkdtemp(prefix="trickle-bench-"))
    rows: list[dict] = []
    srv = None
    try:
        gobin = build_go(tmp)
        srv = Server(naap, tmp)
        print(f"nproc={ncpu} segments={args.segments} size={args.size} chunk={args.chunk} "
              f"rounds={args.rounds} subscriber={'ours' if args.subscriber else 'none'} "
              f"go_max_inflight={args.go_max_inflight} "
              f"server=127.0.0.1:{srv.port}")
        if args.warmup_segments > 0:
            for impl in ("ours", "go"):
                w = run_one(impl, "warmup", args, naap, gobin, srv, tmp, args.warmup_segments)
                if not w["ok"]:
                    rows.append(w)
        for rnd in range(1, args.rounds + 1):
            order = ("ours", "go") if rnd % 2 else ("go", "ours")
            for impl in order:
                rows.append(run_one(impl, str(rnd), args, naap, gobin, srv, tmp, args.segments))
    finally:
        rc_srv = srv.stop() if srv else 0
        shutil.rmtree(tmp, ignore_errors=True)

    timed = [r for r in rows if r["label"] != "warmup"]
    hdr = f"{'round':>6} {'impl':<5} {'wall_s':>8} {'MB/s':>8} {'cpu_s':>7} {'cpu_s/MB':>9} " \
          f"{'rss_KiB':>8}" + (f" {'sub_segs':>8}" if args.subscriber else "") + "  ok"
    print(hdr)
    for r in timed:
        print(f"{r['label']:>6} {r['impl']:<5} {r['wall_s']:8.3f} {r['mb_per_s']:8.1f} "
              f"{r['cpu_s']:7.3f} {r['cpu_s_per_mb']:9.5f} {r['max_rss_kib']:8.0f}" +
              (f" {r.get('sub_segments', 0):8d}" if args.subscriber else "") +
              f"  {'yes' if r['ok'] else 'NO'}")
    med = {}
    for impl in ("ours", "go"):
        good = [r for r in timed if r["impl"] == impl and r["ok"]]
        if good:
            med[impl] = {k: statistics.median(r[k] for r in good)
                         for k in ("wall_s", "mb_per_s", "cpu_s", "cpu_s_per_mb", "max_rss_kib")}
            m = med[impl]
            print(f"{'median':>6} {impl:<5} {m['wall_s']:8.3f} {m['mb_per_s']:8.1f} "
                  f"{m['cpu_s']:7.3f} {m['cpu_s_per_mb']:9.5f} {m['max_rss_kib']:8.0f}")
    if "ours" in med and "go" in med and med["go"]["mb_per_s"] > 0 and med["go"]["cpu_s_per_mb"] > 0:
        print(f"ratio ours/go: throughput_mb_per_s={med['ours']['mb_per_s'] / med['go']['mb_per_s']:.2f} "
              f"cpu_s_per_mb={med['ours']['cpu_s_per_mb'] / med['go']['cpu_s_per_mb']:.2f} "
              f"(throughput > 1 and cpu_s_per_mb < 1 favour ours; nproc={ncpu})")
    failed = [r for r in rows if not r["ok"]]
    for r in failed:
        print(f"FAILED {r['impl']} {r['label']}: {r['error']}", file=sys.stderr)
    if rc_srv != 0:
        print(f"FAILED: server exited {rc_srv} on SIGTERM", file=sys.stderr)
    return 1 if failed or rc_srv != 0 else 0


if __name__ == "__main__":
    sys.exit(main())

"""Interop: our trickle server, publisher and subscriber against Livepeer's pytrickle clients.

Every scenario compares SHA-256 digests of whole segments end to end and checks the exact seqs
delivered. Servers listen on 127.0.0.1 with an ephemeral port; one server per test.

Run: see README.md in this folder (NAAP_BIN_DIR selects the naap-loadtest binary).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
PEER = HERE / "pytrickle_peer.py"
BIN_DIR = Path(os.environ.get("NAAP_BIN_DIR", str(HERE.parents[1] / "build" / "bin")))
NAAP = BIN_DIR / "naap-loadtest"
BASE_PATH = "/ai/trickle/"

if not NAAP.exists():
    pytest.skip(f"{NAAP} not built (set NAAP_BIN_DIR)", allow_module_level=True)


# ---- process helpers -----------------------------------------------------------------------


class Proc:
    """A child process whose stdout lines are collected as they arrive."""

    def __init__(self, name: str, argv: list[str], logdir: Path):
        self.name = name
        self.argv = argv
        self.stderr_path = logdir / f"{name}.stderr"
        self._stderr = open(self.stderr_path, "wb")
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._stderr,
                                  stdin=subprocess.DEVNULL, text=True)
        self.lines: list[str] = []
        self._cv = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.p.stdout:
            with self._cv:
                self.lines.append(line.rstrip("\n"))
                self._cv.notify_all()
        with self._cv:
            self._cv.notify_all()

    def wait_line(self, pattern: str, count: int = 1, timeout: float = 10.0) -> list[str]:
        """Waits until `count` stdout lines match `pattern`; returns them."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                hits = [l for l in self.lines if rx.search(l)]
                if len(hits) >= count:
                    return hits
                left = deadline - time.monotonic()
                if left <= 0 or (self.p.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(
                        f"{self.name}: no {count}x /{pattern}/ within {timeout}s\n{self.describe()}")
                self._cv.wait(min(left, 0.2))

    def finish(self, timeout: float = 30.0) -> int:
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} did not exit within {timeout}s\n{self.describe()}")
        self._reader.join(5)
        return rc

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(5)

    def describe(self) -> str:
        err = self.stderr_path.read_text(errors="replace")[-3000:] if self.stderr_path.exists() else ""
        return (f"$ {' '.join(self.argv)}\n--- stdout\n" + "\n".join(self.lines[-60:]) +
                f"\n--- stderr\n{err}")

    def segments(self) -> list[tuple[int, int, str]]:
        """(seq, bytes, sha256) of every 'segment' line, in order."""
        out = []
        for l in self.lines:
            m = re.match(r"segment seq=(-?\d+) bytes=(\d+) sha256=([0-9a-f-]+)", l)
            if m:
                out.append((int(m[1]), int(m[2]), m[3]))
        return out

    def seqs(self) -> list[int]:
        return [s for s, _, _ in self.segments()]


def ok(proc: Proc, timeout: float = 30.0) -> Proc:
    rc = proc.finish(timeout)
    assert rc == 0, f"{proc.name} exited {rc}\n{proc.describe()}"
    return proc


def read_digests(path: Path) -> dict[int, tuple[int, str]]:
    out: dict[int, tuple[int, str]] = {}
    for line in path.read_text().splitlines():
        seq, size, sha = line.split()
        out[int(seq)] = (int(size), sha)
    return out


class Server:
    def __init__(self, tmp: Path, channels: list[str], extra: list[str]):
        self.tmp = tmp
        port_file = tmp / "server.port"
        argv = [str(NAAP), "trickle", "serve", "--listen", "127.0.0.1:0", "--port-file",
                str(port_file), *[a for c in channels for a in ("--channel", c)], *extra]
        self.proc = Proc("server", argv, tmp)
        deadline = time.monotonic() + 10
        while not port_file.exists():
            if self.proc.p.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start\n{self.proc.describe()}")
            time.sleep(0.02)
        self.port = int(port_file.read_text().strip())
        self.base = f"http://127.0.0.1:{self.port}{BASE_PATH}"

    def url(self, channel: str) -> str:
        return self.base + channel

    def stop(self) -> int:
        if self.proc.p.poll() is None:
            self.proc.p.send_signal(signal.SIGTERM)
        return self.proc.finish(10)


@pytest.fixture
def server_factory(tmp_path):
    servers: list[Server] = []

    def make(*channels: str, extra: list[str] | None = None) -> Server:
        s = Server(tmp_path, list(channels), extra or [])
        servers.append(s)
        return s

    yield make
    for s in servers:
        rc = s.stop()
        assert rc == 0, f"server exited {rc} on SIGTERM\n{s.proc.describe()}"


@pytest.fixture
def procs(tmp_path):
    """Starts peers; kills whatever is still running at the end of the test."""
    started: list[Proc] = []

    def ours(name: str, *args: str) -> Proc:
        p = Proc(name, [str(NAAP), "trickle", *args, "--log-level", "warn"], tmp_path)
        started.append(p)
        return p

    def theirs(name: str, *args: str) -> Proc:
        p = Proc(name, [sys.executable, str(PEER), *args], tmp_path)
        started.append(p)
        return p

    class Spawner:
        pass

    sp = Spawner()
    sp.ours, sp.theirs, sp.tmp = ours, theirs, tmp_path
    yield sp
    for p in started:
        p.kill()


# ---- raw HTTP helpers ----------------------------------------------------------------------


def request(server: Server, method: str, path: str, timeout: float = 5.0):
    """One plain HTTP/1.1 request; returns (status, headers dict lowercased, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        conn.request(method, BASE_PATH + path)
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


class RawChunkedPost:
    """A hand-driven chunked POST, for publishers that are slower than any client library."""

    def __init__(self, port: int, path: str):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.sent = hashlib.sha256()
        self.sent_bytes = 0
        head = (f"POST {BASE_PATH}{path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Content-Type: video/MP2T\r\nTransfer-Encoding: chunked\r\n\r\n")
        self.sock.sendall(head.encode())

    def chunk(self, data: bytes) -> None:
        self.sock.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.sent.update(data)
        self.sent_bytes += len(data)

    def finish(self) -> tuple[list[int], int, dict[str, str]]:
        """Ends the body; returns (interim statuses, final status, final headers)."""
        self.sock.sendall(b"0\r\n\r\n")
        return read_response_head(self.sock)

    def close(self) -> None:
        self.sock.close()


def read_response_head(sock: socket.socket) -> tuple[list[int], int, dict[str, str]]:
    buf = b""
    interim: list[int] = []
    while True:
        while b"\r\n\r\n" not in buf:
            d = sock.recv(65536)
            if not d:
                raise AssertionError(f"connection closed before a final response: {buf!r}")
            buf += d
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        if 100 <= status < 200:
            interim.append(status)
            continue
        headers = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            headers[k.strip().lower()] = v.strip()
        return interim, status, headers


class Relay:
    """Loopback TCP relay that records interim 100 responses the server sends to the client."""

    def __init__(self, upstream_port: int):
        self.upstream = upstream_port
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.continues: list[float] = []  # monotonic times a "HTTP/1.1 100" went downstream
        self.t0 = time.monotonic()
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self._pump, args=(c, u, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, downstream: bool) -> None:
        try:
            while True:
                d = src.recv(65536)
                if not d:
                    break
                if downstream and b"HTTP/1.1 100" in d:
                    self.continues.append(time.monotonic() - self.t0)
                dst.sendall(d)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self) -> None:
        self._stop = True
        self.lsock.close()


def expect_same(sub_digests: dict, pub_digests: dict, seqs: list[int]) -> None:
    assert sorted(sub_digests) == seqs, f"subscriber got seqs {sorted(sub_digests)}, want {seqs}"
    for s in seqs:
        assert sub_digests[s] == pub_digests[s], f"seq {s}: {sub_digests[s]} != {pub_digests[s]}"


SIZE = 64 * 1024


# ---- scenarios -----------------------------------------------------------------------------


def test_their_publisher_to_our_subscriber(server_factory, procs):
    srv = server_factory("a")
    t = procs.tmp
    sub = procs.ours("our_sub", "subscribe", srv.url("a"), "--start-seq", "0", "--segments", "30",
                     "--digests", str(t / "sub.d"), "--timeout-s", "30")
    time.sleep(0.2)  # the subscriber's GET 0 waits for the first byte
    pub = procs.theirs("their_pub", "publish", srv.url("a"), "--segments", "30", "--size",
                       str(SIZE), "--seed", "11", "--interval-ms", "5", "--digests", str(t / "pub.d"))
    ok(pub)
    ok(sub)
    assert sub.seqs() == list(range(30))
    assert all(l.endswith("complete=1") for l in sub.lines if l.startswith("segment "))
    expect_same(read_digests(t / "sub.d"), read_digests(t / "pub.d"), list(range(30)))


def test_our_publisher_to_their_subscriber(server_factory, procs):
    srv = server_factory("b")
    t = procs.tmp
    # Until the end of the stream: our publisher DELETEs the channel when it is done.
    sub = procs.theirs("their_sub", "subscribe", srv.url("b"), "--start-seq", "0",
                       "--digests", str(t / "sub.d"), "--timeout-s", "30")
    time.sleep(0.5)  # python start-up; its GET 0 waits for the first byte
    pub = procs.ours("our_pub", "publish", srv.url("b"), "--segments", "30", "--size", str(SIZE),
                     "--seed", "12", "--interval-ms", "20", "--digests", str(t / "pub.d"))
    ok(pub)
    assert "end=closed_by_us" in pub.lines[-1]
    ok(sub)
    assert sub.seqs() == list(range(30))
    assert sub.wait_line(r"^end reason=(eos|not_found)$")
    expect_same(read_digests(t / "sub.d"), read_digests(t / "pub.d"), list(range(30)))


def test_their_publisher_to_their_subscriber(server_factory, procs):
    srv = server_factory("c")
    t = procs.tmp
    sub = procs.theirs("their_sub", "subscribe", srv.url("c"), "--start-seq", "0", "--segments",
                       "30", "--digests", str(t / "sub.d"), "--timeout-s", "30")
    # pytrickle's default start seq: -2 on a channel nothing was written to yet means seq 0.
    sub2 = procs.theirs("their_sub_m2", "subscribe", srv.url("c"), "--segments", "30",
                        "--digests", str(t / "sub2.d"), "--timeout-s", "30")
    time.sleep(0.5)
    pub = procs.theirs("their_pub", "publish", srv.url("c"), "--segments", "30", "--size",
                       str(SIZE), "--seed", "13", "--interval-ms", "10", "--digests",
                       str(t / "pub.d"))
    ok(pub)
    ok(sub)
    ok(sub2)
    pubd = read_digests(t / "pub.d")
    expect_same(read_digests(t / "sub.d"), pubd, list(range(30)))
    expect_same(read_digests(t / "sub2.d"), pubd, list(range(30)))
    assert sub.seqs() == sub2.seqs() == list(range(30))


@pytest.mark.parametrize("where", ["boundary", "mid_segment"])
def test_join_mid_stream(server_factory, procs, where):
    """Subscribers join at -1 / -2 while pytrickle's publisher holds segment 6 open.

    boundary:    segments 0..5 written, 6 not started  -> nextWrite 6: -2 -> 5, -1 -> 6
    mid_segment: half of segment 6 written            -> nextWrite 7: -2 -> 6, -1 -> 7
    """
    srv = server_factory("j")
    t = procs.tmp
    k = 6
    offset = 0 if where == "boundary" else SIZE // 2
    pub = procs.theirs("their_pub", "publish", srv.url("j"), "--segments", "12", "--size",
                       str(SIZE), "--seed", "14", "--pause-at", str(k), "--pause-offset",
                       str(offset), "--pause-ms", "2500", "--digests", str(t / "pub.d"))
    pub.wait_line(r"^paused ")
    assert int(request(srv, "GET", "j/next")[2]) == (k if offset == 0 else k + 1)
    subs = {}
    for start in ("-1", "-2"):
        subs["ours" + start] = procs.ours(f"our_sub{start}", "subscribe", srv.url("j"),
                                          "--start-seq", start, "--segments", "3", "--digests",
                                          str(t / f"ours{start}.d"), "--timeout-s", "20")
        subs["theirs" + start] = procs.theirs(f"their_sub{start}", "subscribe", srv.url("j"),
                                              "--start-seq", start, "--segments", "3",
                                              "--digests", str(t / f"theirs{start}.d"),
                                              "--timeout-s", "20")
    assert not any(l.startswith("resumed") for l in pub.lines), "pause ended before the joins"
    ok(pub)
    pubd = read_digests(t / "pub.d")
    first = {"-1": k if offset == 0 else k + 1, "-2": k - 1 if offset == 0 else k}
    for name, sub in subs.items():
        ok(sub)
        start = name[-2:]
        want = list(range(first[start], first[start] + 3))
        assert sub.seqs() == want, f"{name}: {sub.seqs()} != {want}\n{sub.describe()}"
        expect_same(read_digests(t / f"{name}.d"), pubd, want)


def test_470_after_eviction(server_factory, procs):
    """Seqs older than the last 5 are answered 470 + Lp-Trickle-Latest; subscribers jump."""
    srv = server_factory("e")
    t = procs.tmp
    pub = procs.theirs("their_pub", "publish", srv.url("e"), "--segments", "14", "--size",
                       str(SIZE), "--seed", "15", "--pause-at", "10", "--pause-offset", "0",
                       "--pause-ms", "2500", "--digests", str(t / "pub.d"))
    pub.wait_line(r"^paused ")
    # Ring holds 5..9, nextWrite is 10.
    for evicted in (0, 4):
        status, headers, body = request(srv, "GET", f"e/{evicted}")
        assert status == 470, (status, headers, body)
        assert headers.get("lp-trickle-latest") == "10", headers
        assert headers.get("lp-trickle-seq") == str(evicted), headers
    status, headers, body = request(srv, "GET", "e/9")  # still in the ring: served in full
    assert status == 200 and headers.get("lp-trickle-seq") == "9", (status, headers)
    sha9 = hashlib.sha256(body).hexdigest()
    ours = procs.ours("our_sub", "subscribe", srv.url("e"), "--start-seq", "0", "--segments", "3",
                      "--digests", str(t / "ours.d"), "--timeout-s", "20")
    theirs = procs.theirs("their_sub", "subscribe", srv.url("e"), "--start-seq", "0",
                          "--segments", "3", "--digests", str(t / "theirs.d"), "--timeout-s", "20")
    ok(pub)
    pubd = read_digests(t / "pub.d")
    assert pubd[9] == (SIZE, sha9)
    ok(ours)
    ok(theirs)
    for sub, d in ((ours, "ours.d"), (theirs, "theirs.d")):
        assert sub.seqs() == [10, 11, 12], sub.describe()
        expect_same(read_digests(t / d), pubd, [10, 11, 12])


def test_channel_delete_ends_waiting_subscribers(server_factory, procs):
    srv = server_factory("d")
    t = procs.tmp
    ours = procs.ours("our_sub", "subscribe", srv.url("d"), "--start-seq", "0", "--digests",
                      str(t / "ours.d"), "--timeout-s", "20")
    theirs = procs.theirs("their_sub", "subscribe", srv.url("d"), "--start-seq", "0",
                          "--digests", str(t / "theirs.d"), "--timeout-s", "20")
    time.sleep(0.5)
    pub = procs.ours("our_pub", "publish", srv.url("d"), "--segments", "3", "--size", str(SIZE),
                     "--seed", "16", "--no-close", "--digests", str(t / "pub.d"))
    ok(pub)
    ours.wait_line(r"^segment ", 3)
    theirs.wait_line(r"^segment ", 3)
    time.sleep(0.3)  # both now wait for seq 3
    assert ours.p.poll() is None and theirs.p.poll() is None
    status, _, body = request(srv, "DELETE", "d")
    assert status == 200, body
    ok(ours, 5)
    ok(theirs, 5)
    assert ours.wait_line(r"^end reason=(channel_closed|channel_not_found)$")
    assert theirs.wait_line(r"^end reason=(eos|not_found)$")
    pubd = read_digests(t / "pub.d")
    for sub, d in ((ours, "ours.d"), (theirs, "theirs.d")):
        assert sub.seqs() == [0, 1, 2]
        expect_same(read_digests(t / d), pubd, [0, 1, 2])
    # The channel is gone: a second DELETE is 400 "Invalid stream", a GET is 404.
    assert request(srv, "DELETE", "d")[0] == 400
    assert request(srv, "GET", "d/3")[0] == 404


def test_segment_delete_mid_publish(server_factory, procs):
    """DELETE {ch}/{seq} while a slow publisher writes seq: readers get the bytes so far and an
    end of segment, then the stream goes on with seq + 1."""
    srv = server_factory("s")
    t = procs.tmp
    ours = procs.ours("our_sub", "subscribe", srv.url("s"), "--start-seq", "0", "--segments", "4",
                      "--digests", str(t / "ours.d"), "--timeout-s", "20")
    theirs = procs.theirs("their_sub", "subscribe", srv.url("s"), "--start-seq", "0",
                          "--segments", "4", "--digests", str(t / "theirs.d"), "--timeout-s", "20")
    time.sleep(0.5)
    post = RawChunkedPost(srv.port, "s/0")
    try:
        for i in range(3):
            post.chunk(bytes([i]) * 1000)
            time.sleep(0.1)
        partial = (post.sent_bytes, post.sent.hexdigest())
        time.sleep(0.3)
        assert ours.segments() == [] and theirs.segments() == []  # segment 0 is still open
        status, _, body = request(srv, "DELETE", "s/0")
        assert status == 200, body
        # Readers are released with what was written so far.
        ours.wait_line(r"^segment seq=0 ", timeout=5)
        theirs.wait_line(r"^segment seq=0 ", timeout=5)
        # The slow publisher, unaware, writes more and ends its body: the server still answers.
        post.chunk(b"x" * 1000)
        interim, final, headers = post.finish()
        assert final == 200, (final, headers)
    finally:
        post.close()
    pub = procs.ours("our_pub", "publish", srv.url("s"), "--start-seq", "1", "--segments", "3",
                     "--size", str(SIZE), "--seed", "17", "--no-close", "--digests",
                     str(t / "pub.d"))
    ok(pub)
    ok(ours)
    ok(theirs)
    want = dict(read_digests(t / "pub.d"))
    want[0] = partial
    for sub, d in ((ours, "ours.d"), (theirs, "theirs.d")):
        assert sub.seqs() == [0, 1, 2, 3], sub.describe()
        expect_same(read_digests(t / d), want, [0, 1, 2, 3])
    assert ours.lines[0].endswith("complete=1"), ours.lines[0]


@pytest.mark.slow
def test_publisher_idle_before_first_byte(server_factory, procs):
    """A POST with no body byte for 11 s gets the server's 100 Continue keepalive (every 10 s)
    and must still complete. Ours and pytrickle's publishers run side by side, each through a
    relay that records the 100 Continue the server sends on their connections."""
    srv = server_factory("k", "p")  # default --keepalive-ms 10000
    t = procs.tmp
    relay_ours, relay_theirs = Relay(srv.port), Relay(srv.port)
    try:
        url_k = f"http://127.0.0.1:{relay_ours.port}{BASE_PATH}k"
        url_p = f"http://127.0.0.1:{relay_theirs.port}{BASE_PATH}p"
        subs = [
            procs.ours("our_sub_k", "subscribe", srv.url("k"), "--start-seq", "0", "--segments",
                       "3", "--digests", str(t / "sub_k.d"), "--timeout-s", "30"),
            procs.theirs("their_sub_k", "subscribe", srv.url("k"), "--start-seq", "0",
                         "--segments", "3", "--digests", str(t / "their_sub_k.d"),
                         "--timeout-s", "30"),
            procs.ours("our_sub_p", "subscribe", srv.url("p"), "--start-seq", "0", "--segments",
                       "3", "--digests", str(t / "sub_p.d"), "--timeout-s", "30"),
        ]
        time.sleep(0.3)
        ours = procs.ours("our_pub", "publish", url_k, "--segments", "3", "--size", str(SIZE),
                          "--seed", "18", "--idle-first-ms", "11000", "--no-close", "--digests",
                          str(t / "pub_k.d"), "--timeout-s", "30")
        theirs = procs.theirs("their_pub", "publish", url_p, "--segments", "3", "--size",
                              str(SIZE), "--seed", "19", "--idle-first-ms", "11000",
                              "--digests", str(t / "pub_p.d"), "--timeout-s", "30")
        ok(ours, 30)
        ok(theirs, 30)
        for s in subs:
            ok(s, 10)
        # Our publisher sends its POST head at once, so the server's keepalive reached it.
        assert relay_ours.continues, "no 100 Continue reached our publisher"
        assert min(relay_ours.continues) >= 9.0
        # Segment 0, the idle one, was sent on its first POST (outcomes of different POSTs may
        # be reported in any order).
        first = ours.wait_line(r"^segment seq=0 ")[0]
        assert "complete=1" in first and "attempts=1" in first, first
        expect_same(read_digests(t / "sub_k.d"), read_digests(t / "pub_k.d"), [0, 1, 2])
        expect_same(read_digests(t / "their_sub_k.d"), read_digests(t / "pub_k.d"), [0, 1, 2])
        expect_same(read_digests(t / "sub_p.d"), read_digests(t / "pub_p.d"), [0, 1, 2])
        # aiohttp 3.14 holds a streamed request's head until its first body byte:
        # pytrickle's "preconnected" POST is invisible to the server while idle, so no 100
        # Continue is sent to it. Recorded for the README, not required.
        print(f"100 Continue to pytrickle publisher: {relay_theirs.continues}")
    finally:
        relay_ours.close()
        relay_theirs.close()

#!/usr/bin/env python3
"""Trickle peer built on Livepeer's Python trickle library (pytrickle), for the interop suite.

    pytrickle_peer.py publish URL --segments N --size B --seed S [--digests F] [...]
    pytrickle_peer.py subscribe URL --start-seq N --segments N [--digests F] [--timeout-s T]

Both commands print one line per segment on stdout,

    segment seq=SEQ bytes=BYTES sha256=HEX

and write 'SEQ BYTES HEX' lines to --digests. The exit code is 0 on success.

Only pytrickle's publisher and subscriber modules are loaded: the package's __init__ pulls in
torch, av and cv2, which the interop environment does not install (see README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib
import importlib.util
import logging
import sys
import time
import types


def load_pytrickle() -> tuple[types.ModuleType, types.ModuleType]:
    """Imports pytrickle.publisher and pytrickle.subscriber without running pytrickle/__init__.py."""
    if "pytrickle" not in sys.modules:
        spec = importlib.util.find_spec("pytrickle")  # locates the package, executes nothing
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("pytrickle is not installed (pip install --no-deps pytrickle==0.1.6)")
        stub = types.ModuleType("pytrickle")
        stub.__path__ = list(spec.submodule_search_locations)
        stub.__package__ = "pytrickle"
        stub.__file__ = spec.origin
        sys.modules["pytrickle"] = stub
    publisher = importlib.import_module("pytrickle.publisher")
    subscriber = importlib.import_module("pytrickle.subscriber")
    return publisher, subscriber


def payload(seed: int, seq: int, size: int) -> bytes:
    """Deterministic bytes of segment `seq`: SHA-256 in counter mode over (seed, seq, block)."""
    out = bytearray()
    block = 0
    prefix = f"{seed}:{seq}:".encode()
    while len(out) < size:
        out += hashlib.sha256(prefix + str(block).encode()).digest()
        block += 1
    return bytes(out[:size])


def emit(line: str) -> None:
    print(line, flush=True)


class DigestFile:
    def __init__(self, path: str | None):
        self._f = open(path, "w", encoding="ascii") if path else None

    def add(self, seq: int, data_len: int, hexdigest: str) -> None:
        if self._f:
            self._f.write(f"{seq} {data_len} {hexdigest}\n")
            self._f.flush()

    def close(self) -> None:
        if self._f:
            self._f.close()


# ---- publish -------------------------------------------------------------------------------


async def run_publish(args: argparse.Namespace) -> int:
    pub_mod, _ = load_pytrickle()
    errors: list[str] = []

    async def on_error(kind: str, exc: Exception | None) -> None:
        errors.append(f"{kind}: {exc}")

    class ObservedPublisher(pub_mod.TricklePublisher):
        """pytrickle's publisher, unchanged, plus a record of when each POST finished."""

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.post_done: dict[str, asyncio.Event] = {}
            self.post_failed: set[str] = set()

        def _event(self, url: str) -> asyncio.Event:
            return self.post_done.setdefault(url, asyncio.Event())

        async def _run_post(self, url, queue):
            before = len(errors)
            try:
                await super()._run_post(url, queue)
            finally:
                if len(errors) > before:
                    self.post_failed.add(url)
                self._event(url).set()

    pub = ObservedPublisher(args.url, mime_type=args.mime, error_callback=on_error)
    digests = DigestFile(args.digests)
    written: list[tuple[int, int, str]] = []
    t0 = time.monotonic()
    await pub.start()
    try:
        for i in range(args.segments):
            writer = await pub.next()
            # next() hands out the POST for pub.idx; its background task, which advances idx
            # and preconnects the following POST, has not run yet at this point.
            seq = pub.idx
            if writer.queue is None:
                emit(f"error seq={seq} reason=publisher_stopped errors={errors}")
                return 1
            # Let pytrickle's background preconnect of seq + 1 run before this segment's bytes.
            await asyncio.sleep(0)
            data = payload(args.seed, seq, args.size)
            if i == 0 and args.idle_first_ms > 0:
                emit(f"idle seq={seq} ms={args.idle_first_ms}")
                await asyncio.sleep(args.idle_first_ms / 1000)
            for off in range(0, len(data), args.chunk):
                if seq == args.pause_at and off >= args.pause_offset and args.pause_ms > 0:
                    await pause(pub, args, seq, off)
                    args.pause_ms = 0
                await writer.write(data[off : off + args.chunk])
                await asyncio.sleep(0)
            if seq == args.pause_at and args.pause_ms > 0:  # pause_offset >= size
                await pause(pub, args, seq, len(data))
                args.pause_ms = 0
            await writer.close()
            hexd = hashlib.sha256(data).hexdigest()
            written.append((seq, len(data), hexd))
            emit(f"segment seq={seq} bytes={len(data)} sha256={hexd}")
            if args.interval_ms > 0:
                await asyncio.sleep(args.interval_ms / 1000)
        # Wait for every written segment's POST to be answered before closing: pytrickle's
        # close() cancels all of its background tasks, in-flight POSTs included.
        ok = True
        for seq, size, hexd in written:
            url = f"{args.url}/{seq}"
            try:
                await asyncio.wait_for(pub._event(url).wait(), timeout=args.timeout_s)
            except asyncio.TimeoutError:
                emit(f"error seq={seq} reason=post_not_answered")
                ok = False
                continue
            if url in pub.post_failed:
                ok = False
            else:
                digests.add(seq, size, hexd)
        if args.delete:
            await pub._run_delete()  # pytrickle's own channel DELETE
        wall = time.monotonic() - t0
        total = sum(s for _, s, _ in written)
        for e in errors:
            emit(f"pytrickle_error {e}")
        emit(
            f"summary segments={args.segments} completed={len(written) if ok else 0} "
            f"bytes={total} wall_s={wall:.3f} errors={len(errors)}"
        )
        return 0 if ok and not errors else 1
    finally:
        await pub.close()
        digests.close()


async def pause(pub, args: argparse.Namespace, seq: int, offset: int) -> None:
    """Holds segment `seq` open with `offset` bytes queued, then announces the pause."""
    if offset == 0 and seq > 0:
        # Segment seq-1 fully received by the server: its POST was answered.
        await asyncio.wait_for(pub._event(f"{args.url}/{seq - 1}").wait(), timeout=10)
    await asyncio.sleep(0.3)  # let queued bytes reach the server
    emit(f"paused seq={seq} offset={offset} ms={args.pause_ms}")
    await asyncio.sleep(args.pause_ms / 1000)
    emit(f"resumed seq={seq}")


# ---- subscribe -----------------------------------------------------------------------------


async def run_subscribe(args: argparse.Namespace) -> int:
    _, sub_mod = load_pytrickle()
    errors: list[str] = []

    async def on_error(kind: str, exc: Exception | None) -> None:
        errors.append(kind)

    sub = sub_mod.TrickleSubscriber(args.url, start_seq=args.start_seq, error_callback=on_error)
    digests = DigestFile(args.digests)
    got = 0
    total = 0
    reason = "count"
    incomplete = 0
    t0 = time.monotonic()
    await sub.start()
    try:
        while args.segments == 0 or got < args.segments:
            segment = await sub.next()
            if segment is None:
                if "stream_not_found" in errors:
                    reason = "not_found"
                elif errors:
                    reason = "error:" + ",".join(errors)
                else:
                    reason = "eos"
                break
            seq = segment.seq()
            h = hashlib.sha256()
            n = 0
            complete = True
            try:
                while True:
                    chunk = await segment.read()
                    if not chunk:
                        break
                    h.update(chunk)
                    n += len(chunk)
            except Exception as e:  # a body cut short (aiohttp ClientPayloadError and the like)
                complete = False
                emit(f"segment_error seq={seq} bytes={n} error={type(e).__name__}")
            finally:
                await segment.close()
            if not complete:
                incomplete += 1
                continue
            if n == 0 and not args.keep_empty:
                emit(f"empty seq={seq}")  # an empty segment (DELETEd or empty POST): move on
                continue
            got += 1
            total += n
            hexd = h.hexdigest()
            digests.add(seq, n, hexd)
            emit(f"segment seq={seq} bytes={n} sha256={hexd}")
    finally:
        await sub.close()
        digests.close()
    emit(f"end reason={reason}")
    emit(
        f"summary segments={got} bytes={total} wall_s={time.monotonic() - t0:.3f} "
        f"incomplete={incomplete}"
    )
    if args.segments > 0:
        return 0 if got >= args.segments else 1
    return 0 if reason in ("eos", "not_found") else 1


# ---- main ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--log-level", default="WARNING", help="Python logging level (pytrickle logs)")
    cmds = p.add_subparsers(dest="cmd", required=True)

    pp = cmds.add_parser("publish", help="publish segments with pytrickle's TricklePublisher")
    pp.add_argument("url", help="channel URL, e.g. http://127.0.0.1:PORT/ai/trickle/NAME")
    pp.add_argument("--segments", type=int, default=10)
    pp.add_argument("--size", type=int, default=65536, help="bytes per segment")
    pp.add_argument("--chunk", type=int, default=16384, help="bytes per write")
    pp.add_argument("--seed", type=int, default=1)
    pp.add_argument("--mime", default="video/MP2T")
    pp.add_argument("--digests")
    pp.add_argument("--interval-ms", type=int, default=0, help="pause between segments")
    pp.add_argument("--idle-first-ms", type=int, default=0,
                    help="open the first segment, then wait this long before its first byte")
    pp.add_argument("--pause-at", type=int, default=-1,
                    help="hold segment SEQ open (mid-stream) for --pause-ms")
    pp.add_argument("--pause-offset", type=int, default=0,
                    help="bytes of the paused segment sent before the pause")
    pp.add_argument("--pause-ms", type=int, default=0)
    pp.add_argument("--delete", action="store_true",
                    help="DELETE the channel at the end (pytrickle's close() does not)")
    pp.add_argument("--timeout-s", type=float, default=60)

    sp = cmds.add_parser("subscribe", help="read segments with pytrickle's TrickleSubscriber")
    sp.add_argument("url")
    sp.add_argument("--start-seq", type=int, default=-2)
    sp.add_argument("--segments", type=int, default=0,
                    help="stop after this many non-empty segments (0 = until the stream ends)")
    sp.add_argument("--digests")
    sp.add_argument("--keep-empty", action="store_true", help="count empty segments too")
    sp.add_argument("--timeout-s", type=float, default=60)

    args = p.parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.WARNING),
                        stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    coro = run_publish(args) if args.cmd == "publish" else run_subscribe(args)

    async def bounded() -> int:
        # pytrickle's own handler: silences aiohttp resets of POSTs its close() abandons.
        load_pytrickle()
        importlib.import_module("pytrickle.base").setup_asyncio_exception_handler()
        try:
            return await asyncio.wait_for(coro, timeout=args.timeout_s)
        except asyncio.TimeoutError:
            emit(f"end reason=timeout after_s={args.timeout_s}")
            return 2

    return asyncio.run(bounded())


if __name__ == "__main__":
    sys.exit(main())

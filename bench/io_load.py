"""A disturbing load beside the measurements (``bench/run.py --io-load N [--cpu-load M]``): N
processes writing and syncing a scratch file on the database's disk, in a loop, and M busy loops
on the CPU, until the run ends.

Issue #14 asks for RET-3's figures "on a run where the single DELETE of the visits takes over 5 s
(throttle the disk or run alongside another load)": a slow or contended disk is where a due set
recomputed from every order hurts. Each writer rewrites ``FILE_MIB`` MiB in 1 MiB blocks with an
fsync after every ``SYNC_EVERY`` block(s) (the WAL flushes and checkpoints of PostgreSQL wait behind
those), then reads the file back. The scratch files go to the system temporary directory (the
same disk as the database on these machines) and are removed at the end.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

FILE_MIB = 256
SYNC_EVERY = 1
BLOCK = b"\x5a" * (1 << 20)


def _writer(stop, path: str) -> None:  # pragma: no cover - a child process
    while not stop.is_set():
        with open(path, "wb") as f:
            for i in range(FILE_MIB):
                if stop.is_set():
                    break
                f.write(BLOCK)
                if i % SYNC_EVERY == SYNC_EVERY - 1:
                    f.flush()
                    os.fsync(f.fileno())
        with open(path, "rb") as f:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            while f.read(1 << 20) and not stop.is_set():
                pass
    try:
        os.unlink(path)
    except OSError:
        pass


def _spinner(stop) -> None:  # pragma: no cover - a child process
    n = 0
    while not stop.is_set():
        for _ in range(100_000):
            n = (n * 31 + 7) % 1_000_003


@contextmanager
def io_load(processes: int, cpu: int = 0) -> Iterator[None]:
    """Run ``processes`` writers and ``cpu`` busy loops for the duration of the block (none for 0)."""
    if processes <= 0 and cpu <= 0:
        yield
        return
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    directory = tempfile.mkdtemp(prefix="governance-bench-io-")
    workers = [
        ctx.Process(target=_writer, args=(stop, os.path.join(directory, f"load-{i}")), daemon=True)
        for i in range(processes)
    ] + [ctx.Process(target=_spinner, args=(stop,), daemon=True) for _ in range(cpu)]
    for w in workers:
        w.start()
    try:
        yield
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=30)
            if w.is_alive():
                w.terminate()
        for name in os.listdir(directory):
            os.unlink(os.path.join(directory, name))
        os.rmdir(directory)

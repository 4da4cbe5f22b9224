"""A throttled disk for the database server (``bench/run.py --throttle-disk MIBPS``): the
PostgreSQL server's processes are put in a block-I/O cgroup whose reads and writes on the data
directory's disk are capped at MIBPS MiB/s, for the measurements (not the set-up), then put back.

Issue #14 asks for RET-3's figures "on a run where the single DELETE of the visits takes over 5 s
(throttle the disk or run alongside another load)". Disk writers beside the measurements
(``--io-load``) slow this machine's database erratically; a cap on the server's own I/O is the same
slow disk in every run. What it caps: every read that misses the page cache, and every write the
server flushes itself (WAL flushes at commit and by the WAL writer, the checkpointer's fsyncs);
dirty pages the kernel writes back on its own are not the server's (cgroup v1 accounting).

Needs root and the cgroup v1 ``blkio`` controller or cgroup v2 with ``io`` enabled, on the same
machine as the server; otherwise a clear error before anything is measured.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

V1 = Path("/sys/fs/cgroup/blkio")
V2 = Path("/sys/fs/cgroup")
GROUP = "governance-bench-throttle"


class ThrottleUnavailable(RuntimeError):
    pass


def whole_disk(device: int) -> str:
    """ "major:minor" of the disk holding ``device`` (a partition's parent; throttles apply to disks)."""
    major, minor = os.major(device), os.minor(device)
    node = Path(f"/sys/dev/block/{major}:{minor}")
    if (node / "partition").exists():
        return (node.resolve().parent / "dev").read_text().strip()
    return f"{major}:{minor}"


def server_of(db_url: str) -> tuple[int, str]:
    """The PostgreSQL server's postmaster (the parent of a backend of ``db_url``) and its data
    directory; ThrottleUnavailable when the server is not a process of this machine."""
    from governance.db import connect

    conn = connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid(), current_setting('data_directory')")
            backend, data_directory = cur.fetchone()
    finally:
        conn.close()
    try:
        return psutil.Process(backend).ppid(), data_directory
    except psutil.NoSuchProcess:
        raise ThrottleUnavailable("--throttle-disk needs the PostgreSQL server on this machine") from None


def server_pids(postmaster: int) -> list[int]:
    """The postmaster and every process it started (backends, WAL writer, checkpointer, ...)."""
    return [postmaster, *(child.pid for child in psutil.Process(postmaster).children())]


def _move(procs_file: Path, pids: list[int]) -> None:
    for pid in pids:
        try:
            procs_file.write_text(str(pid))
        except ProcessLookupError:
            pass  # a backend that ended meanwhile


def _current(pid: int, version: str) -> str:
    """The cgroup ``pid`` is in now (the blkio hierarchy's under v1, the unified one under v2)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if (version == "v1" and "blkio" in controllers.split(",")) or (version == "v2" and controllers == ""):
            return path
    return "/"


def _cgroup_root() -> tuple[Path, str]:
    if (V1 / "blkio.throttle.read_bps_device").exists():
        return V1, "v1"
    controllers = V2 / "cgroup.controllers"
    if controllers.exists() and "io" in controllers.read_text().split():
        return V2, "v2"
    raise ThrottleUnavailable("--throttle-disk needs the cgroup v1 blkio controller or cgroup v2 with io enabled")


@contextmanager
def throttle_disk(mib_per_second: float, db_url: str) -> Iterator[dict]:
    """Cap the reads and writes of ``db_url``'s server on its data directory's disk for the block;
    yields the facts (device, limit, cgroup version) for the results ({} without a cap)."""
    if mib_per_second <= 0:
        yield {}
        return
    if os.geteuid() != 0:
        raise ThrottleUnavailable("--throttle-disk needs root (it moves the PostgreSQL server into a cgroup)")
    postmaster, data_directory = server_of(db_url)
    root, version = _cgroup_root()
    device = whole_disk(os.stat(data_directory).st_dev)
    limit = int(mib_per_second * 1024 * 1024)
    group = root / GROUP
    group.mkdir(exist_ok=True)
    if version == "v1":
        (group / "blkio.throttle.read_bps_device").write_text(f"{device} {limit}")
        (group / "blkio.throttle.write_bps_device").write_text(f"{device} {limit}")
    else:
        (group / "io.max").write_text(f"{device} rbps={limit} wbps={limit}")
    home = root / _current(postmaster, version).lstrip("/")
    _move(group / "cgroup.procs", server_pids(postmaster))
    try:
        yield {"device": device, "mib_per_second": mib_per_second, "cgroup": version}
    finally:
        _move(home / "cgroup.procs", server_pids(postmaster))
        _release(group, home)


def _release(group: Path, home: Path) -> None:
    """Move every process still in ``group`` (a backend forked while the server moved) back to
    ``home`` and remove the group: nothing of the server may stay capped after the run. A backend
    that is exiting keeps the group busy for a moment (EBUSY), so this tries for up to 5 s."""
    from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

    def release() -> None:
        left = [int(p) for p in (group / "cgroup.procs").read_text().split()]
        if left:
            _move(home / "cgroup.procs", left)
        group.rmdir()

    try:
        for attempt in Retrying(
            retry=retry_if_exception_type(OSError), stop=stop_after_delay(5), wait=wait_fixed(0.1), reraise=False
        ):
            with attempt:
                release()
    except RetryError as exc:
        cause = exc.last_attempt.exception()
        raise ThrottleUnavailable(f"could not remove the cgroup {group} ({cause}): remove it by hand") from None

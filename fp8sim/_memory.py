"""The memory guard every floor shares: refuse a request before it allocates what is not free.

`check_memory` compares an estimate of the bytes a request will allocate with the memory
the machine has available now (`available_memory`) and raises `InsufficientMemory` (a
`MemoryError`) with one line naming the sizes. A leaf module (it imports nothing from
fp8sim), so the formats and casts floors use it as the engine does
(`fp8sim.engine.budget` re-exports it beside the progress bars).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["InsufficientMemory", "available_memory", "check_memory", "check_large", "format_bytes",
           "SMALL_BYTES"]

SMALL_BYTES = 1 << 24
"""Requests estimated below this (16 MiB) skip `check_large`'s free-memory query (/proc reads)."""


class InsufficientMemory(MemoryError):
    """A request needs more memory than the machine has available; raised before allocating."""


def _meminfo_available() -> int | None:
    """MemAvailable from /proc/meminfo in bytes, or None where there is no such file."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_available() -> int | None:
    """What a cgroup v2 memory limit leaves (memory.max - memory.current), or None."""
    root = Path("/sys/fs/cgroup")
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(int(limit) - int((root / "memory.current").read_text().strip()), 0)
    except (OSError, ValueError):
        return None


def _sysconf_available() -> int | None:
    """Free physical pages times the page size (os.sysconf), or None where unsupported."""
    try:
        pages, size = os.sysconf("SC_AVPHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return pages * size if pages > 0 and size > 0 else None


def available_memory() -> int | None:
    """Bytes of memory a new allocation can use now, or None when it cannot be found out.

    /proc/meminfo's MemAvailable (free plus reclaimable page cache), lowered to what a
    cgroup v2 limit leaves when the process runs in a container; os.sysconf's free
    physical pages where /proc is missing.
    """
    found = [v for v in (_meminfo_available(), _cgroup_available()) if v is not None]
    if not found:
        found = [v for v in (_sysconf_available(),) if v is not None]
    return min(found) if found else None


def format_bytes(n: float) -> str:
    """'1.5 GB': a byte count in decimal units, for messages ('3.2e+12 EB' past exabytes)."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB", "EB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        if unit != "EB":
            n /= 1000
    return f"{n:.2g} EB"


def check_memory(need: float, what: str, *, hint: str = "",
                 available: int | None = None) -> None:
    """Raises InsufficientMemory when `need` bytes exceed the available memory.

    Args:
        need: estimated bytes the request will allocate.
        what: the request in words, naming its sizes ("gemm: M=1000000 N=1000000 K=4096").
        hint: what to do instead, appended to the message.
        available: bytes available (default: `available_memory()`; None skips the check
            where the machine does not say).
    """
    avail = available_memory() if available is None else available
    if avail is None or need <= avail:
        return
    tail = f"; {hint}" if hint else ""
    raise InsufficientMemory(f"{what} needs about {format_bytes(need)} of memory, "
                             f"{format_bytes(avail)} is available{tail}")


def check_large(need: float, what: str, hint: str = "", *, small: int = SMALL_BYTES) -> None:
    """`check_memory` for a request of more than `small` bytes; a smaller one is never
    refused (it skips the /proc reads: calls run hundreds of times stay as fast)."""
    if need > small:
        check_memory(need, what, hint=hint)

"""How much memory this machine can give, to refuse work that could never fit before it starts.

Linux overcommits: allocating 50 GB on an 8 GB machine may succeed and the process is killed
later, mid-run, by the OOM killer. So sizes that come from outside (a flag, a file's header, a
checkpoint's length) are compared with the memory available before anything is allocated.
"""

from __future__ import annotations

import os


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation without swapping (Linux's MemAvailable),
    else the physical memory; None where neither can be read."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def format_bytes(n: float) -> str:
    """``n`` bytes for people: '512 bytes', '3.2 MiB', '2.4 TiB'."""
    if n < 1024:
        return f"{int(n)} bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        n /= 1024
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")

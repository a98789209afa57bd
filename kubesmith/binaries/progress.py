"""Progress of long work on the control machine (Go builds, downloads): a line every minute."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

HEARTBEAT_SECONDS = 60.0


@contextmanager
def heartbeat(label: str, every: float | None = None) -> Iterator[None]:
    """Print "still <label>, N s" to stderr every `every` seconds until the block ends."""
    interval = HEARTBEAT_SECONDS if every is None else every
    start, done = time.monotonic(), threading.Event()

    def beat() -> None:
        while not done.wait(interval):
            print(f"  still {label}, {time.monotonic() - start:.0f} s", file=sys.stderr,
                  flush=True)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()

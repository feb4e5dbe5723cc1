"""A small progress bar for long loops: count, images/s and ETA on a terminal, silent otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total: int, enabled: bool | None = None, stream: TextIO | None = None, label: str = "scoring"):
        self.total, self.label = total, label
        self.stream = sys.stderr if stream is None else stream  # as it is now, not at import (a redirect)
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.count, self.start, self._last = 0, time.perf_counter(), 0.0

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.perf_counter()
        if self.enabled and (now - self._last > 0.2 or self.count == self.total):
            self._last = now
            rate = self.count / max(now - self.start, 1e-9)
            eta = (self.total - self.count) / rate if rate > 0 else 0
            width = 30
            done = int(width * self.count / max(self.total, 1))
            self.stream.write(f"\r{self.label} [{'#' * done}{'.' * (width - done)}] {self.count}/{self.total} "
                              f"{rate:5.1f} images/s  ETA {int(eta) // 60:d}:{int(eta) % 60:02d} ")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()

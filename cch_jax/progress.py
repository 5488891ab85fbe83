"""A tiny progress bar on stderr with an ETA (no dependency): one line, rewritten with '\\r'.

    bar = Progress(total=12, desc="scan")
    bar.update(skipped=True)   # a chunk loaded from disk: counts, but not towards the rate
    bar.update()               # a computed chunk
    bar.close()

The ETA is (remaining chunks) × (mean seconds per computed chunk), leaving out the first
computed chunk once a second exists, since it includes the one-off compilation.
"""

from __future__ import annotations

import sys
import time


def format_seconds(s: float) -> str:
    """'1:02:03' / '2:03' style; '?' when unknown."""
    if s != s or s == float("inf"):
        return "?"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class Progress:
    """Progress over `total` units (chunks); writes to `file` (default stderr) when enabled."""

    def __init__(
        self, total: int, desc: str = "", *, enabled=True, file=None, width=24, unit="chunks"
    ):
        self.total, self.desc, self.enabled, self.width = int(total), desc, enabled, width
        self.unit = unit
        self.file = sys.stderr if file is None else file
        self.done = 0
        self.start = time.perf_counter()
        self.durations: list[float] = []
        self._last = self.start
        self._render()

    def eta(self) -> float:
        """Seconds left, from the computed chunks' mean duration (first one dropped if possible)."""
        times = self.durations[1:] if len(self.durations) > 1 else self.durations
        if not times:
            return float("nan")
        return (self.total - self.done) * sum(times) / len(times)

    def update(self, *, skipped: bool = False) -> None:
        now = time.perf_counter()
        if not skipped:
            self.durations.append(now - self._last)
        self._last = now
        self.done += 1
        self._render()

    def _render(self) -> None:
        if not self.enabled:
            return
        filled = int(self.width * self.done / max(self.total, 1))
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = format_seconds(time.perf_counter() - self.start)
        line = f"\r{self.desc} [{bar}] {self.done}/{self.total} {self.unit}  {elapsed} elapsed"
        self.file.write(f"{line}  ETA {format_seconds(self.eta())}  ")
        self.file.flush()

    def close(self) -> None:
        if self.enabled:
            self.file.write("\n")
            self.file.flush()

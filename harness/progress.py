"""A run's progress on the console, with the time left across the whole run (asv's own percentage counts
benchmarks, not time; its output goes to the run's log instead).

The expected benchmarks are the run's engines x workloads x scales; each is done when its record says it
ended (ok, skipped, undefined, failed or mismatch). The time left is each pending benchmark's expected time:
the mean of those done at its scale, or, before any has finished there, the mean at the nearest smaller scale
grown in proportion to the rows. On a terminal one line is rewritten in place; otherwise a line is printed at
every tenth of the run and at least every 30 seconds. A benchmark that fails is always printed on a line of
its own, in one line.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from pathlib import Path

from . import records, results
from .config import AS_IS, scale_rows

POLL_S = 0.5
QUIET_S = 30.0


class Progress(threading.Thread):
    def __init__(self, run_dir: Path, expected: list[tuple[str, str, str]], out=None, label: str = "benchmarks"):
        super().__init__(name="prepbench-progress", daemon=True)
        self.run_dir, self.expected, self.label = Path(run_dir), list(dict.fromkeys(expected)), label
        self.out = out or sys.stdout
        self.tty = bool(getattr(self.out, "isatty", lambda: False)())
        self.done: dict[tuple, tuple[str, float]] = {}  # key -> (status, seconds it took, as seen from here)
        self._stopping = threading.Event()
        self._began = self._last_done = time.perf_counter()
        self._printed_at, self._printed_tenth = self._began, -1
        self._coverage_seen = (self.run_dir / results.COVERAGE_FILE).exists()  # from an earlier pass

    def run(self) -> None:
        while not self._stopping.wait(POLL_S):
            self.poll()

    def stop(self) -> None:
        self._stopping.set()
        if self.is_alive():
            self.join()
        self.poll()
        if self.tty:
            self.out.write("\n")
            self.out.flush()

    def poll(self) -> None:
        now = time.perf_counter()
        coverage = records.read_json(self.run_dir / results.COVERAGE_FILE) if not self._coverage_seen else None
        if coverage is not None:  # asv measures plan coverage before the first benchmark: say where the time went
            self._coverage_seen = True
            self._line(f"GPU plan coverage of every workload measured in {coverage.get('elapsed_s', 0):.0f} s")
        for key, record in self._ended().items():
            if key in self.done:
                continue
            self.done[key] = (record.status, now - self._last_done)
            self._last_done = now
            if record.status in ("failed", "mismatch"):
                self._line(f"{record.workload} under {record.engine} at {record.scale}: {record.status}: "
                           f"{_one_line(record.reason)}")
        self._report(now)

    def _ended(self) -> dict[tuple, results.Record]:
        found = {}
        for engine, workload, scale in self.expected:
            if (engine, workload, scale) in self.done:
                continue
            path = results.record_path(self.run_dir, engine, workload, scale)
            raw = records.read_json(path)
            try:
                record = results.Record.from_json(raw, path.name) if raw else None
            except results.RecordError:
                continue
            if record is not None and record.status in results.FINISHED:
                found[(engine, workload, scale)] = record
        return found

    def left_s(self) -> float | None:
        """The expected time of the benchmarks not done yet; None before any has finished."""
        by_scale: dict[str, list[float]] = {}
        for (engine, workload, scale), (status, seconds) in self.done.items():
            if status in ("ok", "failed", "mismatch"):
                by_scale.setdefault(scale, []).append(seconds)
        if not by_scale:
            return None
        means = {scale: statistics.fmean(v) for scale, v in by_scale.items()}
        left = 0.0
        for key in self.expected:
            if key not in self.done:
                left += _estimate(key[2], means)
        return left

    def _report(self, now: float) -> None:
        finished, total = len(self.done), len(self.expected)
        if not total:
            return
        tenth = finished * 10 // total
        left = self.left_s()
        text = (f"[{finished}/{total} {self.label}, {_clock(now - self._began)} elapsed"
                + (f", about {_clock(left)} left]" if left is not None and finished < total else "]"))
        if self.tty:
            self.out.write("\r" + text.ljust(78))
            self.out.flush()
        elif tenth > self._printed_tenth or now - self._printed_at >= QUIET_S:
            self._line(text)
            self._printed_tenth = max(self._printed_tenth, tenth)

    def _line(self, text: str) -> None:
        self.out.write(("\r" if self.tty else "") + text + "\n")
        self.out.flush()
        self._printed_at = time.perf_counter()


def _estimate(scale: str, means: dict[str, float]) -> float:
    if scale in means:
        return means[scale]
    rows = lambda s: scale_rows(s) if s != AS_IS else 1_000_000
    smaller = [s for s in means if rows(s) <= rows(scale)]
    base = max(smaller, key=rows) if smaller else min(means, key=rows)
    return means[base] * max(1.0, rows(scale) / rows(base))


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
        f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _one_line(text: str | None, limit: int = 240) -> str:
    line = (text or "no reason given").strip().splitlines()[0] if (text or "").strip() else "no reason given"
    return line if len(line) <= limit else line[: limit - 3] + "..."

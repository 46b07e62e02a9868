"""What a benchmark is: its metrics, their targets, its variants.

A variant is one way of running a benchmark: "tcp" (kernel TCP loopback),
"usmc" (both ends under `usmc run`), "unix" (Unix sockets) and "fallback"
(client under usmc, server plain, so usmc falls back to TCP). One run of a
variant returns {(metric key, column): value}; the columns are the table's
"tcp", "usmc" and "unix".
"""

from dataclasses import dataclass

COLUMNS = ("tcp", "usmc", "unix")
COLUMN_TITLES = {"tcp": "TCP loopback", "usmc": "usmc", "unix": "Unix socket"}
USMC_VARIANTS = ("usmc", "fallback")


@dataclass(frozen=True)
class Target:
    """A target of issue 4, on the median of the usmc column.

    kind "min": usmc/TCP >= value; "max": usmc/TCP <= value;
    "below": usmc value < value (absolute).
    """
    kind: str
    value: float
    text: str

    def met(self, usmc, tcp):
        if usmc is None:
            return None
        if self.kind == "below":
            return usmc < self.value
        if not tcp:
            return None
        ratio = usmc / tcp
        if self.kind == "min":
            return ratio >= self.value
        return ratio <= self.value


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    higher_better: bool
    target: Target = None
    chart: str = ""  # short label in the chart; empty: not charted


def lower(times):
    return Target("max", 1.0 / times,
                  f"<= {1.0 / times:.3g} ({times:g}x lower)")


def higher(times):
    return Target("min", times, f">= {times:g} ({times:g}x TCP)")


class Benchmark:
    """One row group of the table. Subclasses set the class attributes."""
    name = ""
    title = ""
    variants = ("tcp", "usmc")
    tools = ()  # (program, Debian package that brings it)
    metrics = ()

    def missing(self, env):
        """Why this benchmark cannot run here (None if it can)."""
        return None

    def run(self, env, variant):
        raise NotImplementedError

    def cells(self, variant):
        """The (metric key, column) cells that one variant fills."""
        return [(m.key, variant) for m in self.metrics]

    def summary(self, values):
        """A short text for the progress line from one run's values."""
        parts = []
        charted = [m for m in self.metrics if m.chart] or self.metrics
        for metric in charted:
            for (key, _), value in values.items():
                if key == metric.key:
                    name = metric.chart or metric.label.split(": ")[-1]
                    parts.append(f"{name} {fmt(value)} {metric.unit}")
                    break
        return ", ".join(parts[:3])


def fmt(value):
    """A number with as many digits as a table cell deserves."""
    if value is None:
        return "-"
    a = abs(value)
    if a >= 100000:
        return f"{value / 1e3:.0f}k"
    if a >= 10000:
        return f"{value / 1e3:.1f}k"
    if a >= 100:
        return f"{value:.0f}"
    if a >= 10:
        return f"{value:.1f}"
    if a >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"

"""Prometheus metrics in the text exposition format (version 0.0.4).

A few counters, gauges and histograms are all the server needs, so they are
written here in some sixty lines rather than pulled in as a dependency. Every
update happens on the event loop thread or under a lock, so the numbers are
consistent when scraped.
"""

from __future__ import annotations

import bisect
import threading

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
SAMPLE_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


def _labels(d: dict) -> str:
    if not d:
        return ""
    esc = lambda v: str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")  # noqa: E731
    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in sorted(d.items())) + "}"


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self._counters: dict[str, dict[tuple, float]] = {}
        self._gauges: dict[str, float] = {}
        self._hist: dict[str, tuple[tuple, list[int], list[float]]] = {}  # name -> (bounds, counts, [sum, count])
        self._help: dict[str, tuple[str, str]] = {}

    def describe(self, name: str, kind: str, text: str) -> None:
        self._help[name] = (kind, text)

    def inc(self, name: str, value: float = 1.0, **labels) -> None:
        with self._lock:
            series = self._counters.setdefault(name, {})
            key = tuple(sorted(labels.items()))
            series[key] = series.get(key, 0.0) + value

    def set(self, name: str, value: float) -> None:
        with self._lock:
            self._gauges[name] = float(value)

    def observe(self, name: str, value: float, buckets=LATENCY_BUCKETS) -> None:
        with self._lock:
            bounds, counts, tot = self._hist.setdefault(name, (tuple(buckets), [0] * len(buckets), [0.0, 0]))
            i = bisect.bisect_left(bounds, value)
            if i < len(bounds):
                counts[i] += 1
            tot[0] += value
            tot[1] += 1

    def counter(self, name: str, **labels) -> float:
        with self._lock:
            return self._counters.get(name, {}).get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> str:
        out = []
        with self._lock:
            for name in sorted(set(self._help) | set(self._counters) | set(self._gauges) | set(self._hist)):
                kind, text = self._help.get(name, ("untyped", ""))
                out.append(f"# HELP {name} {text}")
                out.append(f"# TYPE {name} {kind}")
                for key, v in sorted(self._counters.get(name, {}).items()):
                    out.append(f"{name}{_labels(dict(key))} {v:g}")
                if name in self._gauges:
                    out.append(f"{name} {self._gauges[name]:g}")
                if name in self._hist:
                    bounds, counts, (s, c) = self._hist[name]
                    cum = 0
                    for b, k in zip(bounds, counts):
                        cum += k
                        out.append(f'{name}_bucket{{le="{b:g}"}} {cum}')
                    out.append(f'{name}_bucket{{le="+Inf"}} {c}')
                    out.append(f"{name}_sum {s:g}")
                    out.append(f"{name}_count {c}")
        return "\n".join(out) + "\n"


def server_metrics() -> Metrics:
    m = Metrics()
    m.describe("collm_requests_total", "counter", "Requests answered, by endpoint and HTTP status.")
    m.describe("collm_samples_total", "counter", "Samples (generations) drawn.")
    m.describe("collm_flops_total", "counter", "FLOPs spent (2 x params x processed tokens).")
    m.describe("collm_tokens_total", "counter", "Tokens processed, by kind (prompt, completion).")
    m.describe("collm_load_shrunk_total", "counter", "Requests whose budget was cut by load or the token bucket.")
    m.describe("collm_rejected_total", "counter", "Requests refused with 429, by reason.")
    m.describe("collm_cancelled_total", "counter", "Requests cancelled because the client went away.")
    m.describe("collm_budget_level", "gauge", "Tokens left in the global token bucket (-1: no bucket).")
    m.describe("collm_in_flight", "gauge", "Requests holding a model slot.")
    m.describe("collm_queued", "gauge", "Requests waiting for a model slot.")
    m.describe("collm_request_latency_seconds", "histogram", "Wall time of answered requests.")
    m.describe("collm_samples_per_request", "histogram", "Samples drawn per answered request.")
    return m

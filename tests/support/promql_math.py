"""What Prometheus computes, from raw samples: the formulas docs/lessons.md teaches.

The lessons' checks read a window's raw samples (`x[5m]`) and recompute what
`rate()`, `increase()`, `delta()`, `deriv()` and `histogram_quantile()` must
return at that instant, so that a value read at "now" (between two scrapes,
extrapolated) is checked exactly rather than within a tolerance. Written after
Prometheus 2.42's promql/functions.go (extrapolatedRate, linearRegression,
bucketQuantile); tests/unit/project/test_support_promql_math.py checks them against promtool's
numbers in tests/rules/lessons.test.yml.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

Samples = Sequence[tuple[float, float]]  # (timestamp in seconds, value)


def extrapolation_factor(
    samples: Samples, *, at: float, range_seconds: float, counter: bool
) -> float:
    """(extrapolated interval) / (sampled interval): what turns last - first into the result.

    The window is [at - range, at]. From the first and the last sample Prometheus
    extends the sampled interval to the window's edges, but by at most 1.1 average
    sample spacings (else by half a spacing); a counter is never extended below
    its zero point, so a counter whose first sample is 0 is not extended at the
    start at all.
    """
    if len(samples) < 2:
        raise ValueError("no rate without two samples")
    (t0, v0), (t1, v1) = samples[0], samples[-1]
    result = _counter_increase(samples) if counter else v1 - v0
    # in integer milliseconds, as Prometheus stores them: epoch seconds as floats lose
    # the last digits of a difference
    end_ms = _ms(at)
    start_ms = end_ms - _ms(range_seconds)
    to_start = (_ms(t0) - start_ms) / 1000
    to_end = (end_ms - _ms(t1)) / 1000
    sampled = (_ms(t1) - _ms(t0)) / 1000
    average = sampled / (len(samples) - 1)
    if counter and result > 0 and v0 >= 0:
        to_start = min(to_start, sampled * (v0 / result))
    threshold = average * 1.1
    interval = sampled
    interval += to_start if to_start < threshold else average / 2
    interval += to_end if to_end < threshold else average / 2
    return interval / sampled


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _counter_increase(samples: Samples) -> float:
    """last - first, adding back every reset (a drop means the counter restarted at 0)."""
    result = samples[-1][1] - samples[0][1]
    previous = samples[0][1]
    for _, value in samples[1:]:
        if value < previous:
            result += previous
        previous = value
    return result


def increase(samples: Samples, *, at: float, range_seconds: float) -> float:
    factor = extrapolation_factor(samples, at=at, range_seconds=range_seconds, counter=True)
    return _counter_increase(samples) * factor


def rate(samples: Samples, *, at: float, range_seconds: float) -> float:
    return increase(samples, at=at, range_seconds=range_seconds) / range_seconds


def delta(samples: Samples, *, at: float, range_seconds: float) -> float:
    factor = extrapolation_factor(samples, at=at, range_seconds=range_seconds, counter=False)
    return (samples[-1][1] - samples[0][1]) * factor


def deriv(samples: Samples) -> float:
    """The least-squares slope per second through the samples."""
    n = len(samples)
    first = _ms(samples[0][0])
    samples = [((_ms(t) - first) / 1000, v) for t, v in samples]  # near 0: no precision lost
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    covariance = sum((t - mean_t) * (v - mean_v) for t, v in samples)
    variance = sum((t - mean_t) ** 2 for t, _ in samples)
    return covariance / variance


def step_slope(height: float, fraction: float, window: float) -> float:
    """deriv() of a step of `height` at `fraction` of a `window` of evenly spread samples.

    The least-squares slope of 0 before and `height` after the step: 6 h a (1 - a) / T
    (a drop is a negative height). 0 at the window's edges, 1.5 h / T mid-window.
    """
    return 6 * height * fraction * (1 - fraction) / window


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> tuple[float, float, float]:
    """Prometheus's interpolation over cumulative bucket counts: (value, lower, upper).

    The rank q x total falls into the first bucket whose count reaches it; the
    value is interpolated linearly between that bucket's bounds, as if its
    observations were spread evenly. (The lowest bucket's lower bound is 0.)
    """
    bounds = sorted(buckets)
    total = buckets[math.inf]
    rank = q * total
    lower, below = 0.0, 0.0
    for le in bounds:
        if buckets[le] >= rank:
            if le == math.inf:
                return bounds[-2], bounds[-2], math.inf
            value = lower + (le - lower) * (rank - below) / (buckets[le] - below)
            return value, lower, le
        lower, below = le, buckets[le]
    raise AssertionError("unreachable: the +Inf bucket holds every observation")

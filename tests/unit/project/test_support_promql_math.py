"""tests/support/promql_math.py computes what promtool computes (tests/rules/lessons.test.yml).

The lessons' integration checks trust these formulas to recompute a value read
at "now" from its raw samples; here they meet the numbers promtool printed for
the same samples, and the closed forms the page teaches.
"""

from __future__ import annotations

import math

import pytest

from tests.support import promql_math as pm


def _series(values: list[float], step: float = 5.0) -> list[tuple[float, float]]:
    return [(i * step, v) for i, v in enumerate(values)]


# order_failures_total: 0 at 0s..30s, then 24 (the burst), scraped every 5s
FAILURES = _series([0.0] * 7 + [24.0] * 101)
# product_inventory: 100 until 35m, -170 from 35m5s, scraped every 5s
INVENTORY = _series([100.0] * 421 + [-170.0] * 421)


def _window(samples: list[tuple[float, float]], at: float, range_seconds: float) -> list:
    return [(t, v) for t, v in samples if at - range_seconds <= t <= at]


@pytest.mark.parametrize(
    ("at", "expected"),
    [(60, 24.0), (64, 25.6), (244, 24.4), (328, 24.244), (332, 0.0)],
)
def test_increase_extrapolates_to_the_windows_end(at: float, expected: float) -> None:
    """lessons.test.yml: 24 at a scrape, 24 x (T + d) / T between scrapes, 0 once the 0 left."""
    window = _window(FAILURES, at, 300)
    assert pm.increase(window, at=at, range_seconds=300) == pytest.approx(expected, abs=5e-4)
    assert pm.rate(window, at=at, range_seconds=300) == pytest.approx(expected / 300, abs=2e-6)


def test_a_counter_scraped_at_zero_is_not_extrapolated_at_the_start() -> None:
    at = 64
    window = _window(FAILURES, at, 300)
    t_first, t_last = window[0][0], window[-1][0]
    factor = pm.extrapolation_factor(window, at=at, range_seconds=300, counter=True)
    assert factor == pytest.approx((at - t_first) / (t_last - t_first))


@pytest.mark.parametrize(("at", "expected"), [(36 * 60 + 2, -0.029), (50 * 60 + 2, -0.225)])
def test_deriv_is_the_least_squares_slope(at: float, expected: float) -> None:
    window = _window(INVENTORY, at, 1800)
    slope = pm.deriv(window)
    assert round(slope, 3) == expected
    # the closed form for a step at fraction a of the window: with n samples every
    # 5s, T = n x 5s and a = the share of the samples before the step (exact for
    # evenly spaced samples, up to n^2 / (n^2 - 1))
    n = len(window)
    a = sum(1 for _, v in window if v == 100) / n
    closed = pm.step_slope(-270, a, n * 5.0)
    assert slope == pytest.approx(closed, rel=1e-4)


def test_deriv_is_not_delta_over_the_window() -> None:
    at = 36 * 60 + 2
    window = _window(INVENTORY, at, 1800)
    assert pm.delta(window, at=at, range_seconds=1800) == pytest.approx(-270.752, abs=5e-4)
    assert pm.deriv(window) != pytest.approx(-270 / 1800, rel=0.5)


def test_step_slope_is_steepest_mid_window() -> None:
    assert pm.step_slope(-270, 0.5, 1800) == pytest.approx(-1.5 * 270 / 1800)
    assert pm.step_slope(-270, 0.0, 1800) == 0
    assert pm.step_slope(-270, 1.0, 1800) == 0


def test_histogram_quantile_interpolates_within_the_bucket() -> None:
    """tests/rules/recording.test.yml: p95 1.5, p50 0.26 for these per-minute counts."""
    buckets = {0.1: 6, 0.3: 36, 0.5: 48, 1.0: 54, 2.0: 60, 3.0: 60, 5.0: 60, math.inf: 60}
    assert pm.histogram_quantile(0.95, buckets)[0] == pytest.approx(1.5)
    assert pm.histogram_quantile(0.5, buckets) == pytest.approx((0.26, 0.1, 0.3))
    # a rank beyond the last finite bucket reads as that bucket's bound
    assert pm.histogram_quantile(0.99, {1.0: 1, math.inf: 10})[0] == 1.0

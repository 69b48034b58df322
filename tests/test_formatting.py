"""analytics.formatting: the numbers as the paper and the pages print them.

Expected texts are worked out by hand from the spec's "Display" rules (half-up
rounding on the decimal a reader sees, 2 significant digits for p).
"""

import pytest

from analytics import stats
from analytics.formatting import (
    format_ci,
    format_estimate,
    format_estimate_ci,
    format_n_percent,
    format_p,
)


@pytest.mark.parametrize(
    ("p", "text"),
    [
        (0.00685, "0.0069"),
        (0.125, "0.13"),  # half-up; Python's round(0.125, 2) gives 0.12
        (0.00004, "<0.0001"),
        (0.0001, "0.00010"),
        (0.0995, "0.10"),  # the carry keeps 2 significant digits
        (0.002201522016, "0.0022"),
        (0.05, "0.050"),
        (0.9999, "1.0"),
        (1.0, "1.0"),
        (None, "–"),
    ],
)
def test_p_values_show_two_significant_digits_rounded_half_up(p, text):
    """Spec "Display": p to 2 significant digits, "<0.0001" below that (by hand)."""
    assert format_p(p) == text


@pytest.mark.parametrize(
    ("x", "digits", "text"),
    [
        (1.9605, 1, "2.0"),
        (1.25, 1, "1.3"),  # round() gives 1.2
        (0.125, 2, "0.13"),
        (2.675, 2, "2.68"),  # binary 2.67499...; half-up on the decimal shown
        (0.021, 1, "0.02"),  # below 0.1: one more decimal
        (0.045, 1, "0.05"),
        (0.2, 1, "0.2"),
        (0.0029, 1, "0.003"),  # never "0.00" for a positive value
        (None, 1, "–"),
    ],
)
def test_estimates_round_half_up_with_an_extra_decimal_below_one_tenth(x, digits, text):
    """Spec "Display": RR and CI to 1 decimal, 2 where below 0.1, half-up (by hand)."""
    assert format_estimate(x, digits=digits) == text


def test_ratios_with_their_interval_read_as_in_the_paper():
    """The age row (RR 1.96, CI 1.27-3.02 in the contract's example): "1.96 (1.27–3.02)" to 2
    decimals, "2.0 (1.3–3.0)" to 1."""
    assert format_estimate_ci(1.960474308, (1.274086419, 3.016639574), digits=2) == (
        "1.96 (1.27–3.02)"
    )
    assert format_estimate_ci(1.960474308, (1.274086419, 3.016639574)) == "2.0 (1.3–3.0)"
    assert format_ci((0.002892780127, 0.1476363416)) == "0.003–0.1"
    assert format_ci(None) == "–"
    assert format_ci(stats.Interval(0.5, 2.0)) == "0.5–2.0"
    assert format_estimate_ci(None, None) == "–"


@pytest.mark.parametrize(
    ("k", "n", "text"),
    [(16, 85, "16 (18.8%)"), (17, 85, "17 (20.0%)"), (1, 16, "1 (6.3%)"), (0, 0, "0 (–)")],
)
def test_counts_show_with_their_percentage_to_one_decimal_half_up(k, n, text):
    """By hand: 16/85 = 18.82 %, 17/85 = 20 %, 1/16 = 6.25 % -> 6.3 % (half-up)."""
    assert format_n_percent(k, n) == text

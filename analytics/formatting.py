"""The study's numbers as a reader sees them: rounding half-up, paper-style text.

The statistics (``analytics.stats``) and the JSON contract carry unrounded numbers;
rounding happens here only: for the pages (``templatetags.analytics_format``), the
contract's ``nn_ci.text``, the sheets' ``*_display`` columns (``exports``) and the
published-vs-registry comparison.
Pure Python (``decimal``): no Django, no numpy or scipy.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

EN_DASH = "–"
NOT_ESTIMABLE = "–"


def _round_half_up(x: float, decimals: int) -> Decimal:
    # str(x) is the shortest repr, so 0.125 rounds as the decimal 0.125 a reader sees
    # (to 0.13), not as the binary 0.12499999... ; Python's round() would give 0.12.
    quantum = Decimal(1).scaleb(-decimals)
    return Decimal(str(x)).quantize(quantum, rounding=ROUND_HALF_UP)


def format_decimal(x: float | None, decimals: int, *, na: str = NOT_ESTIMABLE) -> str:
    """``x`` rounded half-up to a fixed number of decimals (``"-"`` when ``None``)."""
    if x is None:
        return na
    return f"{_round_half_up(x, decimals):f}"


def format_estimate(x: float | None, *, digits: int = 1, na: str = NOT_ESTIMABLE) -> str:
    """RR/OR/LR for display: ``digits`` decimals, one more when ``|x| < 0.1``.

    A non-zero value that would round to zero keeps one significant digit instead.

    >>> format_estimate(1.9605), format_estimate(0.021), format_estimate(1.96, digits=2)
    ('2.0', '0.02', '1.96')
    >>> format_estimate(0.0029)
    '0.003'
    """
    if x is None:
        return na
    decimals = digits + 1 if abs(x) < 0.1 else digits
    if 0 < abs(x) < Decimal(1).scaleb(-decimals) / 2:
        # A positive value must not read "0.00" (an LR- CI limit of 0.0029): keep one
        # significant digit instead.
        decimals = -Decimal(str(x)).adjusted()
    return format_decimal(x, decimals)


def format_ci(ci: tuple[float, float] | None, *, digits: int = 1, na: str = NOT_ESTIMABLE) -> str:
    """CI limits joined by an en dash, each formatted like :func:`format_estimate`.

    ``ci`` is a ``(low, high)`` pair or has ``low`` and ``high`` (``stats.Interval``).
    """
    if ci is None:
        return na
    low, high = (ci.low, ci.high) if hasattr(ci, "low") else ci
    low_text = format_estimate(low, digits=digits, na=na)
    return f"{low_text}{EN_DASH}{format_estimate(high, digits=digits, na=na)}"


def format_estimate_ci(
    estimate: float | None,
    ci: tuple[float, float] | None,
    *,
    digits: int = 1,
    na: str = NOT_ESTIMABLE,
) -> str:
    """``"1.96 (1.27–3.02)"``; the bare estimate when there is no CI."""
    if estimate is None:
        return na
    text = format_estimate(estimate, digits=digits)
    return text if ci is None else f"{text} ({format_ci(ci, digits=digits, na=na)})"


def format_p(p: float | None, *, na: str = NOT_ESTIMABLE) -> str:
    """p to 2 significant digits, half-up; ``"<0.0001"`` below 0.0001.

    >>> format_p(0.00685), format_p(0.125), format_p(0.00004), format_p(1.0)
    ('0.0069', '0.13', '<0.0001', '1.0')
    """
    if p is None:
        return na
    if p < 0.0001:
        return "<0.0001"
    exponent = Decimal(str(p)).adjusted()  # position of the first significant digit
    rounded = _round_half_up(p, 1 - exponent)
    # Rounding may carry into a new digit (0.0995 -> 0.10): keep 2 significant digits.
    if rounded.adjusted() > exponent:
        rounded = rounded.quantize(Decimal(1).scaleb(-(1 - rounded.adjusted())))
    return f"{rounded:f}"


def format_percent(k: int, n: int, *, decimals: int = 1, na: str = NOT_ESTIMABLE) -> str:
    """``k/n`` as a percentage with ``decimals`` decimals, half-up (``"18.8%"``)."""
    if n == 0:
        return na
    percent = Decimal(k) * 100 / Decimal(n)
    return f"{percent.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP):f}%"


def format_n_percent(k: int, n: int, *, decimals: int = 1) -> str:
    """``"16 (18.8%)"``; ``"0 (–)"`` when the denominator is 0."""
    return f"{k} ({format_percent(k, n, decimals=decimals)})"


def format_nn_interval(interval) -> str:
    """An ``stats.NNInterval`` for display, e.g. ``"NNTB 4.2 to ∞ to NNTH 12.0"`` or
    ``"NNH 1.8 to 8.5"`` (bounds like :func:`format_estimate`)."""
    if interval.disjoint:
        nntb, nnth = format_estimate(interval.nntb), format_estimate(interval.nnth)
        return f"NNTB {nntb} to ∞ to NNTH {nnth}"
    label = "NNH" if interval.kind == "nnh" else "NNT"
    high = "∞" if interval.high is None else format_estimate(interval.high)
    return f"{label} {format_estimate(interval.low)} to {high}"

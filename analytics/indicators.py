"""Quality-of-care indicators: pure statistics on per-patient columns (no Django).

Definitions follow ``../shared/spec/quality-indicators.md``: the time indicators
(minutes between two recorded times; median and quartiles by R's type 7, shares
within thresholds, award levels) and the rate indicators (Clopper-Pearson 95 % CI,
target met or not), and the funnel plot's exact binomial control limits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .stats import proportion

if TYPE_CHECKING:
    import numpy as np

RECANALIZED = ("2b", "2c", "3")
AWARD_MIN_PATIENTS = 30
FUNNEL_LEVELS = (0.95, 0.998)


@dataclass(frozen=True)
class TimeIndicator:
    """Minutes from ``start`` to ``end`` among the patients with ``only`` true."""

    code: str
    start: str
    end: str
    only: str | None
    thresholds: tuple[int, ...]


@dataclass(frozen=True)
class RateIndicator:
    """``numerator`` among ``denominator`` (names of boolean columns)."""

    code: str
    numerator: str
    denominator: str
    target: float | None
    at_most: bool = False  # the target is an upper bound ("<= 6 %")


TIME_INDICATORS = (
    TimeIndicator("door_to_imaging", "door_time", "imaging_time", None, (30,)),
    TimeIndicator("door_to_needle", "door_time", "needle_time", "thrombolysed", (45, 60)),
    TimeIndicator("door_to_groin", "door_time", "groin_puncture_time", None, (60, 90)),
    TimeIndicator("imaging_to_groin", "imaging_time", "groin_puncture_time", None, (60,)),
    TimeIndicator(
        "groin_to_reperfusion", "groin_puncture_time", "reperfusion_time", "recanalized", (30, 60)
    ),
    TimeIndicator("onset_to_reperfusion", "onset_time", "reperfusion_time", "recanalized", ()),
)

DEFAULT_TARGETS = {
    "reperfusion_mtici_2b_3": 80.0,
    "first_pass_reperfusion": 30.0,
    "sich": 6.0,
    "mrs_0_2_3m": None,
    "mortality_3m": None,
    "followup_3m_complete": 70.0,
    "minimum_dataset_complete": 90.0,
}


def rate_indicators(targets: Mapping[str, float | None] | None = None) -> tuple[RateIndicator, ...]:
    """The rate indicators with ``targets`` (percent; the defaults where not given)."""
    chosen = {**DEFAULT_TARGETS, **(targets or {})}
    return (
        RateIndicator(
            "reperfusion_mtici_2b_3",
            "recanalized",
            "mtici_recorded",
            chosen["reperfusion_mtici_2b_3"],
        ),
        RateIndicator(
            "first_pass_reperfusion",
            "first_pass",
            "first_pass_eligible",
            chosen["first_pass_reperfusion"],
        ),
        RateIndicator("sich", "sich", "sich_recorded", chosen["sich"], at_most=True),
        RateIndicator("mrs_0_2_3m", "mrs_0_2", "mrs_3m_recorded", chosen["mrs_0_2_3m"]),
        RateIndicator("mortality_3m", "dead_3m", "mrs_3m_recorded", chosen["mortality_3m"]),
        RateIndicator(
            "followup_3m_complete",
            "mrs_3m_recorded",
            "window_closed",
            chosen["followup_3m_complete"],
        ),
        RateIndicator(
            "minimum_dataset_complete",
            "dataset_complete",
            "window_closed",
            chosen["minimum_dataset_complete"],
        ),
    )


# ESO Angels levels (RES-Q's calculation): (level, [(threshold minutes, share %), ...]),
# best last; a level holds when every one of its (threshold, share) holds.
DEFAULT_AWARD_THRESHOLDS = {
    "door_to_needle": (
        ("gold", ((60, 50.0),)),
        ("platinum", ((60, 75.0),)),
        ("diamond", ((60, 75.0), (45, 50.0))),
    ),
    "door_to_groin": (
        ("gold", ((90, 50.0),)),
        ("platinum", ((90, 75.0),)),
        ("diamond", ((90, 75.0), (60, 50.0))),
    ),
}


@dataclass(frozen=True)
class Within:
    numerator: int
    denominator: int
    percent: float | None


@dataclass(frozen=True)
class TimeSummary:
    """Minutes of one time indicator: ``n``, median and type-7 quartiles, shares within."""

    n: int
    median: float | None
    q1: float | None
    q3: float | None
    within: dict[int, Within]


@dataclass(frozen=True)
class RateSummary:
    numerator: int
    denominator: int
    percent: float | None
    ci_low: float | None
    ci_high: float | None
    target: float | None
    met: bool | None


def intervals(start: np.ndarray, end: np.ndarray, only: np.ndarray | None = None) -> np.ndarray:
    """Minutes from ``start`` to ``end`` (seconds, NaN when not recorded), kept where both
    are recorded, the interval is >= 0 and ``only`` (boolean) holds."""
    import numpy as np

    minutes = (np.asarray(end, dtype=float) - np.asarray(start, dtype=float)) / 60.0
    keep = ~np.isnan(minutes) & (minutes >= 0)
    if only is not None:
        keep &= np.asarray(only, dtype=bool)
    return minutes[keep]


def summarize_times(minutes: Sequence[float], thresholds: Sequence[int]) -> TimeSummary:
    """Median and quartiles by linear interpolation (``numpy.percentile(method="linear")``,
    R type 7) and, per threshold, the intervals at or below it.

    Parameters
    ----------
    minutes : sequence of float
        The patients' intervals (already restricted to those who count).
    thresholds : sequence of int
        Minutes.

    Returns
    -------
    TimeSummary
        Median and quartiles ``None`` when there is no interval.
    """
    import numpy as np

    values = np.asarray(minutes, dtype=float)
    n = len(values)
    within = {}
    for threshold in thresholds:
        k = int(np.count_nonzero(values <= threshold))
        within[threshold] = Within(k, n, 100.0 * k / n if n else None)
    if not n:
        return TimeSummary(0, None, None, None, within)
    q1, median, q3 = np.percentile(values, [25, 50, 75], method="linear")
    return TimeSummary(n, float(median), float(q1), float(q3), within)


def award(
    code: str, summary: TimeSummary, thresholds: Mapping[str, Sequence] | None = None
) -> str | None:
    """The best award level ``summary`` reaches (``None`` below ``AWARD_MIN_PATIENTS``
    patients or when no level is reached).

    Parameters
    ----------
    code : str
        ``door_to_needle`` or ``door_to_groin``.
    summary : TimeSummary
        Its ``within`` must hold every threshold the levels name.
    thresholds : mapping, optional
        Level definitions by code (``DEFAULT_AWARD_THRESHOLDS``' shape).
    """
    levels = (thresholds or DEFAULT_AWARD_THRESHOLDS)[code]
    if summary.n < AWARD_MIN_PATIENTS:
        return None
    reached = None
    for level, conditions in levels:
        if all(
            summary.within[minutes].percent is not None and summary.within[minutes].percent >= share
            for minutes, share in conditions
        ):
            reached = level
    return reached


def summarize_rate(k: int, n: int, target: float | None, *, at_most: bool = False) -> RateSummary:
    """Percent with its Clopper-Pearson 95 % CI (``stats.proportion``), and whether the
    target (percent; an upper bound when ``at_most``) is met (``None`` without target or
    denominator)."""
    found = proportion(k, n)
    if found.estimate is None:
        return RateSummary(k, n, None, None, None, target, None)
    percent = 100.0 * found.estimate
    met = None
    if target is not None:
        met = percent <= target if at_most else percent >= target
    low, high = found.ci
    return RateSummary(k, n, percent, 100.0 * low, 100.0 * high, target, met)


def funnel_limits(
    p: float, sizes: Sequence[int], *, levels: Sequence[float] = FUNNEL_LEVELS
) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """Control limits (percent) around the overall proportion ``p`` for each sample size.

    The exact binomial quantiles (``scipy.stats.binom.ppf``) at ``(1 - level) / 2`` and
    ``(1 + level) / 2``, divided by the size: the percent a site of that size falls
    within by chance alone with probability ``level`` (Spiegelhalter 2005, without the
    interpolation between integer counts).

    Returns
    -------
    dict
        level -> (low, high) arrays of percents, one per size.
    """
    import numpy as np
    from scipy.stats import binom

    n = np.asarray(sizes, dtype=float)
    found = {}
    for level in levels:
        low = binom.ppf((1 - level) / 2, n, p) / n * 100.0
        high = binom.ppf((1 + level) / 2, n, p) / n * 100.0
        found[level] = (low, high)
    return found


def grouped_medians(values: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The median of each group of ``values``, as ``numpy.percentile(values_of_group, 50,
    method="linear")`` gives it (R's type 7): the groups found by one sort of their
    numbers, each group's middle values by a partial sort.

    Parameters
    ----------
    values : numpy.ndarray
        Floats, none NaN.
    groups : numpy.ndarray
        Whole numbers >= 0, one per value (small ones sort fastest: by radix).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        The groups present, ascending, and their medians.
    """
    import numpy as np

    values = np.asarray(values, dtype=float)
    groups = np.asarray(groups)
    if groups.size and groups.max() < np.iinfo(np.int16).max:
        groups = groups.astype(np.int16)  # a stable sort of 16-bit numbers is a radix sort
    order = np.argsort(groups, kind="stable")
    ordered, present = values[order], groups[order]
    starts = np.flatnonzero(np.r_[True, present[1:] != present[:-1]]) if len(order) else order
    counts = np.diff(np.r_[starts, len(order)])
    # The two middle values of each group: a partial sort (partition) of the group finds
    # them exactly, in a fraction of the time of sorting every value.
    low, high = np.empty(len(starts)), np.empty(len(starts))
    for i, (start, count) in enumerate(zip(starts.tolist(), counts.tolist(), strict=True)):
        below, above = (count - 1) // 2, count // 2
        middle = np.partition(ordered[start : start + count], [below, above])
        low[i], high[i] = middle[below], middle[above]
    # numpy's interpolation at weight 1/2 (numpy.lib's _lerp): from the upper value.
    medians = np.where(counts % 2 == 1, low, high - (high - low) * 0.5)
    return present[starts].astype(np.int64), medians

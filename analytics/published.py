"""Published vs registry: each number printed in the paper beside the registry's value.

The paper's numbers are transcribed once, in ``published.csv`` (one line per printed
number: where it was printed, its label, the text as printed, the path of the
registry's value in the ``study_tables`` result, a scale, and a known issue). A
number is *reproduced* when the registry's value, rounded half-up to the decimals
the paper printed, gives the printed text; *differs* otherwise; *not estimable*
when the registry has no value. The reason is given where it is known: a known
issue of the paper (rows that repeat other rows, PPV 92.9%), or a p-value that the
other p-method reproduces (the paper's p-values are Wald, not Fisher).
"""

from __future__ import annotations

import csv
import re
from dataclasses import asdict, dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from functools import cache
from pathlib import Path

from django.utils.translation import gettext as _

from . import formatting

DATA_FILE = Path(__file__).with_name("published.csv")

REPRODUCED = "reproduced"
DIFFERS = "differs"
NOT_ESTIMABLE = "not estimable"
STATUSES = (REPRODUCED, DIFFERS, NOT_ESTIMABLE)


@dataclass(frozen=True)
class PublishedNumber:
    source: str
    label: str
    printed: str
    path: str
    scale: float = 1.0
    known_issue: str = ""


@cache
def published_numbers() -> tuple[PublishedNumber, ...]:
    """Every number printed in the paper's Tables I-IV and text (``published.csv``)."""
    with DATA_FILE.open(encoding="utf-8", newline="") as handle:
        return tuple(
            PublishedNumber(
                source=row["source"],
                label=row["label"],
                printed=row["printed"],
                path=row["path"],
                scale=float(row["scale"] or 1),
                known_issue=row["known_issue"],
            )
            for row in csv.DictReader(handle)
        )


_ITEM = re.compile(r"^(?P<name>\w+)\[(?P<key>[^\]]+)\]$")


def resolve(result: dict, path: str):
    """The value at ``path`` in a ``study_tables`` result.

    ``rows[key]`` selects the row whose ``key`` is ``key``; a number indexes a
    list; ``a+b`` sums sibling counts; a trailing ``%`` makes it a percentage of
    the sibling ``n``. Missing -> ``None``.
    """
    node = result
    parts = path.split(".")
    for part in parts[:-1]:
        node = _step(node, part)
        if node is None:
            return None
    last = parts[-1]
    percent = last.endswith("%")
    last = last.rstrip("%")
    if "+" in last or percent:
        parts_ = [node.get(name) if isinstance(node, dict) else None for name in last.split("+")]
        if None in parts_:
            return None
        total = sum(parts_)
        if not percent:
            return total
        return None if not node.get("n") else total / node["n"] * 100
    return _step(node, last)


def _step(node, part: str):
    match = _ITEM.match(part)
    if match:
        rows = node.get(match["name"]) or []
        return next((row for row in rows if row.get("key") == match["key"]), None)
    if isinstance(node, list):
        index = int(part)
        return node[index] if index < len(node) else None
    if isinstance(node, dict):
        return node.get(part)
    return None


def _matches(printed: str, value: float) -> bool:
    text = printed.strip()
    if text.startswith("<"):
        return value < float(text[1:])
    decimals = len(text.split(".", 1)[1]) if "." in text else 0
    quantum = Decimal(1).scaleb(-decimals)
    rounded = Decimal(str(value)).quantize(quantum, rounding=ROUND_HALF_UP)
    return rounded == Decimal(text)


def _display(value, number: PublishedNumber) -> str:
    """The registry's value with one decimal more than printed (p-values as p)."""
    if value is None:
        return "–"
    if number.path.endswith(".p"):
        return formatting.format_p(value)
    printed = number.printed
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    decimals = max(len(printed.split(".", 1)[1]) if "." in printed else 0, 1) + 1
    return formatting.format_decimal(float(value), decimals)


def compare(result: dict, other: dict | None = None) -> list[dict]:
    """Each published number beside the registry's value, with a status and reason.

    Parameters
    ----------
    result : dict
        ``study_tables`` output (with the p-method the reader chose).
    other : dict, optional
        The same tables with the other p-method: a p-value that differs but is
        reproduced by the other method says so.
    """
    rows = []
    for number in published_numbers():
        value = resolve(result, number.path)
        if value is not None:
            value = value * number.scale
        reason = ""
        if value is None:
            status = NOT_ESTIMABLE
            reason = number.known_issue or _row_note(result, number.path)
        elif _matches(number.printed, value):
            status = REPRODUCED
            reason = number.known_issue
        else:
            status = DIFFERS
            reason = (
                number.known_issue
                or _other_method_reason(result, other, number)
                or _other_count_reason(result, number)
                or _truncation_reason(number, value)
            )
        rows.append(
            {
                **asdict(number),
                "registry": value,
                "registry_display": _display(value, number),
                "status": status,
                "reason": reason,
            }
        )
    return rows


def summary(rows: list[dict]) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for row in rows:
        counts[row["status"]] += 1
    return counts


def _row_note(result: dict, path: str) -> str:
    """The registry's own note on the row (e.g. why an RR is not estimable)."""
    parts = path.split(".")
    for end in range(len(parts) - 1, 0, -1):
        node = resolve(result, ".".join(parts[:end]))
        if isinstance(node, dict) and node.get("note"):
            return node["note"]
    return ""


def _truncates(printed: str, value: float) -> bool:
    text = printed.strip()
    if text.startswith("<"):
        return False
    decimals = len(text.split(".", 1)[1]) if "." in text else 0
    quantum = Decimal(1).scaleb(-decimals)
    return Decimal(str(value)).quantize(quantum, rounding=ROUND_DOWN) == Decimal(text)


def _truncation_reason(number: PublishedNumber, value: float) -> str:
    if number.path.endswith(".p") or not _truncates(number.printed, value):
        return ""
    return _(
        "The paper appears to truncate instead of rounding: %(value)s cut to the printed "
        "decimals gives %(printed)s."
    ) % {"value": _display(value, number), "printed": number.printed}


def _other_count_reason(result: dict, number: PublishedNumber) -> str:
    """A Table I / III "n (%)" that counts another cell than the exposed with the event."""
    parent, _sep, last = number.path.rpartition(".")
    if last not in ("exposed_events", "percent") or not parent.startswith(("table1", "table3")):
        return ""
    row = resolve(result, parent)
    if not isinstance(row, dict) or not row.get("n"):
        return ""
    candidates = {
        _("the number of exposed patients (with or without the outcome)"): row["exposed_n"],
        _("all patients with the outcome (exposed and unexposed)"): row["exposed_events"]
        + row["unexposed_events"],
    }
    for description, count in candidates.items():
        value = count if last == "exposed_events" else count / row["n"] * 100
        if _matches(number.printed, value):
            return _("The printed n (%%) is %(what)s, not the exposed with the outcome.") % {
                "what": description
            }
    return ""


def _other_method_reason(result: dict, other: dict | None, number: PublishedNumber) -> str:
    if other is None or not number.path.endswith(".p"):
        return ""
    value = resolve(other, number.path)
    if value is None or not _matches(number.printed, value):
        return ""
    method = other.get("p_method")
    if method == "wald":
        return _(
            "The paper's p-values are the Wald test of ln RR (Katz SE), not Fisher's exact "
            "test that its methods state: the Wald p here is %(p)s."
        ) % {"p": formatting.format_p(value)}
    return _("Reproduced by Fisher's exact test (p = %(p)s).") % {"p": formatting.format_p(value)}

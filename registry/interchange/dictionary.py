"""The data dictionary, generated from the models and rules (never maintained by hand).

One entry per interchange column: name, section, label, type, allowed codes
with their labels, min/max (``rules.RANGES``), the field that decides whether
it applies (``rules.BRANCHING``), the cross-field rules it takes part in
(``rules.RULES``), the help text, its privacy category (``columns.PRIVACY``) and
what the de-identified export does with it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass

from django.utils.translation import gettext as _

from registry import rules

from . import columns as interchange
from . import exporter

FIELDS = (
    "name",
    "section",
    "label",
    "type",
    "required",
    "codes",
    "min",
    "max",
    "applies_when",
    "rules",
    "help_text",
    "privacy",
    "deidentified_export",
)


@dataclass(frozen=True)
class Entry:
    name: str
    section: str
    label: str
    type: str
    required: str
    codes: str
    min: str
    max: str
    applies_when: str
    rules: str
    help_text: str
    privacy: str
    deidentified_export: str


def _codes(column: interchange.Column) -> str:
    if column.kind == interchange.FLAG:
        return "1 = yes; 0 = no"
    if column.kind == interchange.CATEGORY:
        return "; ".join(f"{code} = {label}" for code, label in column.codes)
    return ""


def _applies_when(name: str) -> str:
    branch = rules.BRANCHING.get(name)
    if branch is None:
        return ""
    if len(branch.values) > 1:
        text = f"{branch.controller} in {branch.value_text}"
    else:
        text = f"{branch.controller} = {branch.value_text}"
    if not branch.exclusive:
        text += _(" (required then; may also be recorded otherwise)")
    return text


def _deidentified(column: interchange.Column) -> str:
    """What the de-identified export does with the column, in words."""
    treatment = exporter.deidentified_treatment(column)
    if treatment == exporter.PSEUDONYM:
        return _("replaced by %(name)s, a pseudonym valid for one file") % {
            "name": exporter.PSEUDO_ID
        }
    if treatment == exporter.OFFSET:
        unit = _("minutes") if column.kind == interchange.DATETIME else _("whole days")
        return _("%(name)s: %(unit)s from the door time") % {
            "name": exporter.offset_name(column),
            "unit": unit,
        }
    if treatment == exporter.TOP_CODE:
        ceiling = interchange.TOP_CODED[column.name]
        return _("top-coded: %(n)s means %(n)s or more") % {"n": ceiling}
    return _("dropped") if treatment == exporter.DROPPED else _("kept")


def entries() -> list[Entry]:
    found = []
    for column in interchange.columns():
        low, high = rules.RANGES.get(column.name, ("", ""))
        section = "patient" if column.section is None else column.section.key
        found.append(
            Entry(
                name=column.name,
                section=section,
                label=column.label,
                type=column.kind,
                required="yes" if column.name in interchange.REQUIRED else "",
                codes=_codes(column),
                min=str(low),
                max=str(high),
                applies_when=_applies_when(column.name),
                rules="; ".join(
                    str(rule.message) for rule in rules.RULES if column.name in rule.fields
                ),
                help_text=str(column.field.help_text or ""),
                privacy=column.privacy or "",
                deidentified_export=_deidentified(column),
            )
        )
    return found


def as_csv() -> str:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for entry in entries():
        writer.writerow(asdict(entry))
    return buffer.getvalue()


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def as_markdown() -> str:
    lines = [
        "# " + _("Data dictionary of the stroke registry"),
        "",
        _(
            "Generated from the models (manage.py data_dictionary). Blank always means "
            "not recorded; flags are 1/0; dates YYYY-MM-DD; date-times YYYY-MM-DDTHH:MM "
            "(hospital time)."
        ),
        "",
        "| " + " | ".join(FIELDS) + " |",
        "|" + "---|" * len(FIELDS),
    ]
    for entry in entries():
        values = asdict(entry)
        lines.append("| " + " | ".join(_md_cell(values[f]) for f in FIELDS) + " |")
    return "\n".join(lines) + "\n"

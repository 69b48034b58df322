"""``manage.py check_data``: run the registry's consistency rules over every record."""

from __future__ import annotations

import json
import tempfile
from collections import Counter

from django.core.management.base import BaseCommand, CommandError

from registry.checks import (
    CHUNK_SIZE,
    MISSING,
    VIOLATION,
    WARNING,
    completeness_dict,
    completeness_rows,
    scan,
)
from registry.checks import completeness as run_completeness
from registry.models import SECTION_MODELS, Patient, Site

# Findings beyond this many characters of output wait in a temporary file, not in memory.
SPOOL_BYTES = 32 * 1024 * 1024


class Command(BaseCommand):
    help = (
        "List every rule violation, every warning (with its confirmation, if any) and every "
        "missing value of a completed section, per site and per patient, with completeness "
        "per section and per site."
    )

    def add_arguments(self, parser):
        parser.add_argument("--site", help="only this site code")
        parser.add_argument("--format", choices=("text", "json"), default="text")
        parser.add_argument(
            "--chunk-size",
            type=int,
            default=CHUNK_SIZE,
            help=f"patients checked at a time (memory against queries; default {CHUNK_SIZE})",
        )
        parser.add_argument(
            "--strict", action="store_true", help="exit with status 1 when a rule is violated"
        )

    def handle(self, *args, site=None, format="text", strict=False, chunk_size=CHUNK_SIZE, **_):
        if chunk_size < 1:
            raise CommandError("--chunk-size must be at least 1")
        patients = Patient.objects.all()
        if site:
            if not Site.objects.filter(code=site).exists():
                raise CommandError(f"unknown site code {site!r}")
            patients = patients.filter(site__code=site)
        # The findings go to a temporary file as they are found (memory holds one chunk
        # of patients), then follow the counts, which are known only at the end.
        with tempfile.SpooledTemporaryFile(SPOOL_BYTES, mode="w+", encoding="utf-8") as body:
            counts = self._findings(patients, body, format, chunk_size)
            completeness = run_completeness(patients)
            body.seek(0)
            if format == "json":
                self._json(counts, body, completeness)
            else:
                self._text(counts, body, completeness)
        if strict and counts[VIOLATION]:
            raise CommandError(f"{counts[VIOLATION]} rule violation(s)", returncode=1)

    def _findings(self, patients, body, format: str, chunk_size: int) -> Counter:
        self._messages: dict[int, str] = {}
        counts: Counter = Counter()
        write = self._json_finding if format == "json" else self._text_finding
        last = (None, None)
        for n, findings in scan(patients, chunk_size=chunk_size):
            counts["patients"] += n
            for f in findings:
                counts[f.kind] += 1
                counts["unconfirmed"] += f.kind == WARNING and f.confirmation is None
                write(body, f, first=counts["findings"] == 0, last=last)
                counts["findings"] += 1
                last = (f.site, f.study_id)
        return counts

    def _copy(self, body) -> None:
        for block in iter(lambda: body.read(1 << 16), ""):
            self.stdout.write(block, ending="")

    def _json_finding(self, body, f, *, first: bool, last) -> None:
        # A rule's message is translated once, not once per finding.
        message = self._messages.get(id(f.message))
        if message is None:
            message = self._messages[id(f.message)] = str(f.message)
        body.write(("" if first else ",\n") + "    " + _pretty(f.as_dict(message), 2))

    def _json(self, counts, body, completeness) -> None:
        out = self.stdout
        head = {
            "n_patients": counts["patients"],
            "n_violations": counts[VIOLATION],
            "n_warnings": counts[WARNING],
            "n_missing": counts[MISSING],
        }
        out.write("{", ending="\n")
        for key, value in head.items():
            out.write(f"  {json.dumps(key)}: {json.dumps(value)},", ending="\n")
        if counts["findings"]:
            out.write('  "findings": [', ending="\n")
            self._copy(body)
            out.write("\n  ],", ending="\n")
        else:
            out.write('  "findings": [],', ending="\n")
        text = _pretty(completeness_dict(completeness), 1)
        out.write(f'  "completeness": {text}', ending="\n")
        out.write("}")

    def _text_finding(self, body, f, *, first: bool, last) -> None:
        if f.site != last[0]:
            body.write(f"\nSite {f.site}\n")
        if (f.site, f.study_id) != last:
            body.write(f"  {f.study_id}\n")
        kind = {VIOLATION: "rule   ", WARNING: "warning", MISSING: "missing"}[f.kind]
        body.write(f"    {kind} {f.code} [{', '.join(f.fields)}]: {f.message}\n")
        if f.confirmation is not None:
            c = f.confirmation
            body.write(f"            confirmed by {c.by} on {c.at:%Y-%m-%d %H:%M}: {c.reason}\n")

    def _text(self, counts, body, completeness) -> None:
        out = self.stdout.write
        out(
            f"{counts['patients']} patients checked: {counts[VIOLATION]} rule violations, "
            f"{counts[WARNING]} warnings ({counts['unconfirmed']} not confirmed), "
            f"{counts[MISSING]} missing values in completed sections."
        )
        self._copy(body)
        out("\nCompleteness (% of applicable values recorded)")
        sections = tuple(m.key for m in SECTION_MODELS)
        header = ["site", *sections, "all"]
        out("  " + "".join(f"{h:>15}" for h in header))
        for row in completeness_rows(completeness, sections):
            cells = [*row["sections"], row["all"]]
            text = "".join("{:>15}".format("-" if c is None else f"{c:.1f}") for c in cells)
            out(f"  {row['site']:>15}{text}")


def _pretty(value, level: int) -> str:
    """``value`` as ``json.dumps(value, indent=2)`` writes it at nesting ``level``.

    The scalars go through the C encoder: with ``indent`` json encodes in Python,
    which for a million patients' findings costs more than the checks."""
    pad = "  " * (level + 1)
    if isinstance(value, dict) and value:
        items = (f"{pad}{json.dumps(k)}: {_pretty(v, level + 1)}" for k, v in value.items())
        return "{\n" + ",\n".join(items) + "\n" + "  " * level + "}"
    if isinstance(value, list) and value:
        items = (pad + _pretty(v, level + 1) for v in value)
        return "[\n" + ",\n".join(items) + "\n" + "  " * level + "]"
    return json.dumps(value)

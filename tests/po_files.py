"""A gettext catalogue (.po) read in plain Python, for the tests of the translations (no
msgfmt or polib needed)."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

CATALOGUE = Path(settings.BASE_DIR) / "locale" / "vi" / "LC_MESSAGES" / "django.po"
COMPILED = CATALOGUE.with_suffix(".mo")
LINE = re.compile(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?) (".*")$')


@dataclass
class Entry:
    msgid: str = ""
    msgctxt: str | None = None
    msgid_plural: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    obsolete: bool = False


def _entries(lines: list[str]):
    entry, target = Entry(), None
    for line in [*lines, ""]:
        if not line.strip():
            if target is not None:
                yield entry
            entry, target = Entry(), None
        elif line.startswith("#~"):
            entry.obsolete = True
        elif line.startswith("#,"):
            entry.flags |= {flag.strip() for flag in line[2:].split(",")}
        elif line.startswith("#"):
            continue
        elif match := LINE.match(line):
            keyword, index, text = match.groups()
            target = ("msgstr", int(index or 0)) if keyword.startswith("msgstr") else (keyword,)
            _append(entry, target, ast.literal_eval(text))
        else:  # a continuation line: "..."
            _append(entry, target, ast.literal_eval(line))


def _append(entry: Entry, target: tuple, text: str) -> None:
    if target[0] == "msgstr":
        entry.msgstr[target[1]] = entry.msgstr.get(target[1], "") + text
    else:
        setattr(entry, target[0], (getattr(entry, target[0]) or "") + text)


def read_po(path: Path) -> list[Entry]:
    """The catalogue's entries, the header (msgid "") included."""
    return list(_entries(path.read_text(encoding="utf-8").splitlines()))


def catalog_of(entries: list[Entry]) -> dict:
    """The entries as Python's ``gettext.GNUTranslations`` reads them from a .mo: a key
    per message (``ctxt\\x04msgid``; ``(msgid, n)`` for plural forms)."""
    catalog = {}
    for entry in entries:
        if entry.obsolete or "fuzzy" in entry.flags:
            continue
        key = f"{entry.msgctxt}\x04{entry.msgid}" if entry.msgctxt is not None else entry.msgid
        if entry.msgid_plural is None:
            catalog[key] = entry.msgstr[0]
        else:
            catalog.update({(key, n): text for n, text in entry.msgstr.items()})
    return catalog

"""The Vietnamese catalogue: every message translated, none fuzzy, placeholders kept, and
the committed compiled catalogue (.mo, read on a machine without msgfmt) the same as
the .po it was compiled from."""

import gettext
import re

from django.utils import translation

from .po_files import CATALOGUE, COMPILED, catalog_of, read_po

PLACEHOLDERS = re.compile(r"%\(\w+\)[sd]|%\(\w+\)0\d[sd]|%%|\{\w+\}")


def messages():
    return [entry for entry in read_po(CATALOGUE) if entry.msgid and not entry.obsolete]


def test_every_message_is_translated_and_none_is_fuzzy():
    untranslated = [e.msgid for e in messages() if not all(e.msgstr.values()) or not e.msgstr]
    fuzzy = [e.msgid for e in messages() if "fuzzy" in e.flags]
    assert untranslated == [] and fuzzy == []
    assert len(messages()) > 900


def test_every_translation_keeps_the_placeholders_of_its_message():
    changed = [
        e.msgid
        for e in messages()
        if sorted(PLACEHOLDERS.findall(e.msgid)) != sorted(PLACEHOLDERS.findall(e.msgstr[0]))
        and e.msgid_plural is None
    ]
    assert changed == []


def test_vietnamese_has_one_plural_form():
    header = read_po(CATALOGUE)[0].msgstr[0]
    assert "Plural-Forms: nplurals=1; plural=0;" in header
    assert all(list(e.msgstr) == [0] for e in messages() if e.msgid_plural is not None)


def test_the_committed_mo_is_compiled_from_the_committed_po():
    with COMPILED.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    expected = catalog_of(read_po(CATALOGUE))
    # msgfmt leaves the date the .pot was made out of the compiled header.
    expected[""] = re.sub(r"POT-Creation-Date: [^\n]*\n", "", expected[""])
    assert compiled._catalog == expected


def test_django_reads_the_committed_catalogue():
    with translation.override("vi"):
        assert translation.gettext("Patients") == "Bệnh nhân"
        assert translation.pgettext("changes of a record", "History") == "Lịch sử thay đổi"

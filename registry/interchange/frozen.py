"""Reading a data freeze's rows (``DataFreeze``), verified against their SHA-256.

Below the exporter and ``registry.freezes``, which both read frozen rows.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from collections.abc import Iterator
from typing import TYPE_CHECKING

from django.utils.translation import gettext as _

from . import columns as interchange

if TYPE_CHECKING:
    from registry.models import DataFreeze

PIECE_BYTES = 256 * 1024  # uncompressed bytes read at a time


class FreezeTampered(ValueError):
    """A freeze whose rows no longer match its SHA-256: nothing is computed from it."""


# -- read ----------------------------------------------------------------------------------


def _pieces(freeze: DataFreeze) -> Iterator[bytes]:
    with gzip.GzipFile(fileobj=io.BytesIO(freeze.rows_gz), mode="rb") as stream:
        yield from iter(lambda: stream.read(PIECE_BYTES), b"")


def freeze_verify(*, freeze: DataFreeze) -> None:
    """Raise ``FreezeTampered`` unless the stored rows' SHA-256 is the freeze's."""
    digest = hashlib.sha256()
    try:
        for piece in _pieces(freeze):
            digest.update(piece)
    except (OSError, EOFError) as exc:  # not gzip any more
        raise FreezeTampered(_tampered(freeze)) from exc
    if digest.hexdigest() != freeze.sha256:
        raise FreezeTampered(_tampered(freeze))


def _tampered(freeze: DataFreeze) -> str:
    return _(
        "The data freeze “%(name)s” does not match its SHA-256 (%(sha)s): its rows were "
        "changed after it was frozen, so nothing is computed from it."
    ) % {"name": freeze.name, "sha": freeze.sha256}


def freeze_csv(*, freeze: DataFreeze) -> Iterator[bytes]:
    """The frozen CSV, exactly the stored rows, in pieces; verified first
    (``FreezeTampered``)."""
    freeze_verify(freeze=freeze)
    return _pieces(freeze)


def text_rows(pieces: Iterator[bytes]) -> Iterator[list[str]]:
    """The CSV rows (header first) of CSV pieces that each end at a row's end (the
    exporter's ``to_csv``)."""
    for piece in pieces:
        yield from csv.reader(io.StringIO(piece.decode("utf-8"), newline=""))


def freeze_text_rows(*, freeze: DataFreeze) -> Iterator[list[str]]:
    """The frozen CSV's rows (header first) as texts, verified first, decompressed and
    decoded as they are read."""
    freeze_verify(freeze=freeze)
    with gzip.GzipFile(fileobj=io.BytesIO(freeze.rows_gz), mode="rb") as stream:
        yield from csv.reader(io.TextIOWrapper(stream, encoding="utf-8", newline=""))


def freeze_typed_rows(*, freeze: DataFreeze) -> Iterator[dict]:
    """The frozen rows as typed values (what ``exporter.typed_rows`` gives), verified
    first; parsed with the interchange columns' parsers."""
    rows = freeze_text_rows(freeze=freeze)
    header = next(rows)
    parsers = [interchange.parser(interchange.by_name()[name]) for name in header]
    for row in rows:
        yield {name: parse(text) for name, parse, text in zip(header, parsers, row, strict=True)}

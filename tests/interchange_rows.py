"""Valid interchange rows as CSV text, for the import/export tests."""

import csv
import io

from registry import synthetic
from registry.interchange import columns as interchange


def _as_text(values: dict[str, object]) -> dict[str, str]:
    return {c.name: interchange.format_value(c, values[c.name]) for c in interchange.columns()}


VALID = _as_text(synthetic.row())  # the typical synthetic patient


def row(**overrides) -> dict[str, str]:
    values = dict(VALID)
    values.update({k: str(v) for k, v in overrides.items()})
    return values


def csv_text(rows, header=None) -> str:
    header = list(header or interchange.column_names())
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for values in rows:
        writer.writerow([values.get(name, "") for name in header])
    return buffer.getvalue()


def write_csv(tmp_path, rows, name="patients.csv", header=None):
    path = tmp_path / name
    path.write_text(csv_text(rows, header), encoding="utf-8")
    return path

"""The Word report of the demo cohort, opened with python-docx and read cell by cell
against the JSON contract of the same data (every count, every estimate as displayed)."""

import io
import json

import docx
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from PIL import Image

from analytics import exposures as ex
from analytics.formatting import (
    EN_DASH,
    format_decimal,
    format_estimate,
    format_estimate_ci,
    format_n_percent,
    format_p,
)
from analytics.report_docx import build

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def demo_report(django_db_setup, django_db_blocker, tmp_path_factory):
    """The demo cohort's JSON and Word report, made by the two commands."""
    folder = tmp_path_factory.mktemp("report")
    with django_db_blocker.unblock():
        from django.db import transaction

        with transaction.atomic():
            call_command("seed_demo", stdout=io.StringIO())
            call_command("study_tables", "--output", str(folder / "t.json"))
            call_command("study_report", "--format", "docx", "--output", str(folder / "r.docx"))
            transaction.set_rollback(True)
    result = json.loads((folder / "t.json").read_text())
    return result, docx.Document(str(folder / "r.docx"))


def _table_after(document, caption_start: str):
    """The Word table that follows the caption paragraph starting with ``caption_start``."""
    body = document.element.body
    tables = iter(document.tables)
    table_by_element = {t._tbl: t for t in tables}
    found = False
    for child in body.iterchildren():
        if child.tag.endswith("}p") and "".join(child.itertext()).startswith(caption_start):
            found = True
        elif found and child in table_by_element:
            return table_by_element[child]
    raise AssertionError(f"no table after {caption_start!r}")


def _rows(table) -> list[list[str]]:
    return [[cell.text for cell in row.cells] for row in table.rows]


def _risk_cells(row: dict) -> list[str]:
    number_needed = (
        f"NNH {row['nnh']}" if row["nnh"] else f"NNT {row['nnt']}" if row["nnt"] else "–"
    )
    return [
        str(row["n"]),
        f"{row['exposed_events']} / {row['exposed_n']}",
        f"{row['unexposed_events']} / {row['unexposed_n']}",
        format_n_percent(row["exposed_events"], row["n"]),
        format_estimate_ci(row["rr"], row["rr_ci"]),
        format_estimate_ci(row["rd"], row["rd_ci"], digits=2),
        format_p(row["p"]),
        number_needed,
    ]


def test_table_one_of_the_word_report_is_the_json_as_displayed(demo_report):
    result, document = demo_report
    rows = _rows(_table_after(document, "Table I."))
    assert rows[0][:2] == ["Variable", "n"]
    assert len(rows) == 1 + len(result["table1"]["rows"])
    for cells, row in zip(rows[1:], result["table1"]["rows"], strict=True):
        assert cells[0].startswith(row["label"])
        assert cells[1:] == _risk_cells(row), row["key"]


def test_table_three_of_the_word_report_is_the_json_as_displayed(demo_report):
    result, document = demo_report
    rows = _rows(_table_after(document, "Table III."))
    for cells, row in zip(rows[1:], result["table3"]["rows"], strict=True):
        assert cells[0] == f"{row['label']} – {row['outcome_label']}"
        assert cells[1:] == _risk_cells(row)


@pytest.mark.parametrize("key, caption", [("table2", "Table II."), ("table4", "Table IV.")])
def test_the_diagnostic_tables_carry_every_count_and_estimate(demo_report, key, caption):
    result, document = demo_report
    table = result[key]
    rows = _rows(_table_after(document, caption))
    values = [cells[1] for cells in rows[1:]]
    assert values[:4] == [str(table[k]) for k in ("tp", "fp", "fn", "tn")]
    for value, name in zip(values[4:8], ("sensitivity", "specificity", "ppv", "npv"), strict=True):
        item = table[name]
        low, high = (format_decimal(x * 100, 1) for x in item["ci"])
        assert value == f"{format_decimal(item['estimate'] * 100, 1)} ({low}{EN_DASH}{high})"
    lr = [
        format_estimate_ci(table[k]["estimate"], table[k]["ci"])
        for k in ("lr_positive", "lr_negative")
    ]
    assert values[8:10] == lr
    assert values[10] == format_p(table["p"])


def test_the_baseline_outcomes_and_mrs_tables_carry_every_count(demo_report):
    result, document = demo_report
    baseline = _rows(_table_after(document, "Baseline characteristics: continuous"))
    continuous = result["baseline"]["continuous"]
    assert [c[0] for c in baseline[1:]] == [v["label"] for v in continuous.values()]
    age = continuous["age"]
    quartiles = f"{format_estimate(age['q1'])}–{format_estimate(age['q3'])}"
    assert baseline[1][1:4] == [
        str(age["n"]),
        f"{format_estimate(age['mean'])} ± {format_estimate(age['sd'])}",
        f"{format_estimate(age['median'])} ({quartiles})",
    ]
    characteristics = _rows(_table_after(document, "Baseline characteristics: n (%)"))
    for cells, row in zip(characteristics[1:], result["baseline"]["rows"], strict=True):
        assert cells == [
            row["label"],
            format_n_percent(row["n"], row["denominator"]),
            str(row["denominator"]),
            str(row["missing"]),
        ]
    outcomes = _rows(_table_after(document, "Outcomes"))
    recanalization = result["outcomes"]["recanalization"]["all"]
    assert outcomes[1][1:] == [
        format_n_percent(recanalization["n"], recanalization["denominator"]),
        str(recanalization["denominator"]),
    ]
    death = result["outcomes"]["death_3m"]
    assert [format_n_percent(death["n"], death["denominator"]), str(death["denominator"])] in [
        r[1:] for r in outcomes
    ]
    mrs = _rows(_table_after(document, "Modified Rankin Scale distribution"))
    for cells, (tp, counts) in zip(mrs[1:], result["outcomes"]["mrs"].items(), strict=True):
        assert cells[1:8] == [str(n) for n in counts]
        assert cells[8] == str(result["outcomes"]["mrs_missing"][tp])


def test_the_regression_table_carries_each_odds_ratio_as_displayed(demo_report):
    result, document = demo_report
    rows = _rows(_table_after(document, "Multivariable logistic regression"))
    for cells, term in zip(rows[1:], result["regression"]["terms"], strict=True):
        assert cells == [
            term["label"],
            format_estimate_ci(term["or"], term["ci"], digits=2),
            format_p(term["p"]),
        ]


def test_the_title_page_and_methods_say_what_and_how(demo_report):
    result, document = demo_report
    text = "\n".join(p.text for p in document.paragraphs)
    assert "Filters: none (every patient)" in text
    assert f"Patients: {result['n_patients']}" in text
    assert "Data as of: 20" in text and "Generated: 20" in text
    methods = next(p.text for p in document.paragraphs if p.text.startswith("n (%) of"))
    assert "two-sided Fisher's exact test" in methods
    assert "exact (Clopper–Pearson) method" in methods
    assert "Covariates of the regression:" in methods
    assert "statsmodels " in methods and "Python " in methods


def test_the_tables_have_journal_rules_and_no_vertical_ones(demo_report):
    _result, document = demo_report
    borders = document.tables[0]._tbl.tblPr.xpath("./w:tblBorders/*")
    styles = {b.tag.rsplit("}", 1)[1]: b.get(b.tag.split("}")[0] + "}val") for b in borders}
    assert styles["top"] == styles["bottom"] == "single"
    assert styles["insideV"] == styles["left"] == styles["right"] == "nil"


def test_the_figures_are_300_dpi_png_with_captions(demo_report):
    _result, document = demo_report
    images = [shape for shape in document.inline_shapes]
    assert len(images) == 3
    captions = [p.text for p in document.paragraphs if p.text.startswith("Figure ")]
    assert [c.split(".")[0] for c in captions] == ["Figure 1", "Figure 3", "Figure 4"]
    for part in document.part.package.image_parts:
        image = Image.open(io.BytesIO(part.blob))
        assert image.format == "PNG"
        assert round(image.info["dpi"][0]) == 300


def test_a_later_table_of_the_json_is_rendered_when_present():
    from analytics.tables import strip_internal, study_tables

    result = strip_internal(study_tables())
    result["shift"] = {
        "model": "proportional-odds logistic",
        "ci_method": "wald",
        "rows": [
            {
                "key": "female",
                "population": "all",
                "n": 12,
                "common_or": 2.345,
                "ci": [1.05, 5.2],
                "p": 0.037,
                "note": None,
            }
        ],
    }
    result["outcomes"]["rates"] = [
        {
            "key": "death_3m",
            "numerator": 3,
            "denominator": 12,
            "percent": 25.0,
            "ci": [5.49, 57.19],
            "ci_method": "clopper-pearson",
        }
    ]
    document = docx.Document(io.BytesIO(build(result)))
    shift = _rows(_table_after(document, "Shift analysis"))
    assert shift[1] == [str(ex.label("female")), "12", "2.35 (1.05–5.20)", "0.037"]
    assert _rows(_table_after(document, "Outcome rates"))[1] == [
        "death_3m",
        "3 / 12",
        "25.0 (5.5–57.2)",
    ]


def test_the_report_page_downloads_the_word_report(client, investigator):
    client.force_login(investigator)
    response = client.get(reverse("analytics:download", args=["all", "docx"]))
    assert response["Content-Type"].endswith("wordprocessingml.document")
    assert response["Content-Disposition"].endswith('.docx"')
    assert docx.Document(io.BytesIO(response.content)).tables
    one_table = client.get(reverse("analytics:download", args=["table1", "docx"]))
    assert one_table.status_code == 404


def test_the_report_command_needs_an_output_file(db):
    with pytest.raises(CommandError, match="--output"):
        call_command("study_report", "--format", "docx")

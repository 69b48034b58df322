"""Published vs registry: the transcription, the rounding rule and the known reasons."""

import io

import pytest

from analytics import published, tables

from .analytics_cohort import build_cohort


def test_every_printed_number_of_the_four_tables_is_transcribed():
    numbers = published.published_numbers()
    sources = {n.source for n in numbers}
    assert {"Table I", "Table II", "Table III", "Table IV", "Results", "Discussion"} <= sources
    table1 = [n for n in numbers if n.source == "Table I"]
    assert len(table1) == 24 * 6 + 3  # n, %, RR, CI low, CI high, p per row; 3 NNH
    assert sum(1 for n in numbers if n.source == "Table III") == 4 * 6 + 2


@pytest.mark.parametrize(
    ("printed", "value", "expected"),
    [
        ("3", 3.0166, True),  # the paper's "1.3-3"
        ("1.9", 1.9605, False),  # 1.96 rounds half-up to 2.0
        ("2.0", 1.95, True),  # half-up, not half-even
        ("0.002", 0.0024, True),
        ("0.06", 0.0647, True),
        ("<0.0001", 0.00004, True),
        ("<0.0001", 0.0002, False),
        ("18.8", 18.823529, True),
        ("20", 20.0, True),
    ],
)
def test_a_number_is_reproduced_at_the_decimals_the_paper_printed(printed, value, expected):
    assert published._matches(printed, value) is expected


def test_paths_resolve_rows_lists_sums_and_percentages():
    result = {
        "table1": {"rows": [{"key": "female", "rr_ci": [0.9, 2.5]}]},
        "table2": {"tp": 66, "fp": 5, "fn": 1, "tn": 13, "n": 85},
        "outcomes": {"mrs": {"admission": [0, 0, 0, 0, 0, 85, 0]}},
    }
    assert published.resolve(result, "table1.rows[female].rr_ci.1") == 2.5
    assert published.resolve(result, "table1.rows[male].rr") is None
    assert published.resolve(result, "table2.tp+fp") == 71
    assert published.resolve(result, "table2.tp+fp%") == pytest.approx(71 / 85 * 100)
    assert published.resolve(result, "outcomes.mrs.admission.5") == 85


def test_ppv_of_the_paper_is_marked_with_its_known_error():
    result = {"table2": {"ppv": {"estimate": 66 / 71}}, "p_method": "fisher"}
    rows = {r["label"]: r for r in published.compare(result)}
    ppv = rows["3 T MRI PPV %"]
    assert ppv["status"] == published.DIFFERS
    assert "93.0" in ppv["reason"]
    assert rows["3 T MRI NPV %"]["status"] == published.NOT_ESTIMABLE


def test_a_p_value_reproduced_by_wald_says_the_paper_used_wald():
    fisher = {"p_method": "fisher", "table1": {"rows": [{"key": "age_70_plus", "p": 0.0069}]}}
    wald = {"p_method": "wald", "table1": {"rows": [{"key": "age_70_plus", "p": 0.0021}]}}
    row = next(
        r for r in published.compare(fisher, wald) if r["path"] == "table1.rows[age_70_plus].p"
    )
    assert row["status"] == published.DIFFERS
    assert "Wald" in row["reason"]


def test_repeated_rows_carry_their_reason():
    rows = {r["label"]: r for r in published.compare({"p_method": "fisher"})}
    assert "DAPT" in rows["Hypertension: RR"]["reason"]
    assert "repeat" in rows["CKD: RR"]["reason"]


@pytest.mark.django_db
def test_every_path_names_a_value_of_the_study_tables(site_a, site_b):
    build_cohort(site_a, site_b)
    result = tables.study_tables(None)
    for number in published.published_numbers():
        parent, _, last = number.path.rpartition(".")
        if last.isdigit() and not parent.endswith(("admission", "discharge", "month3")):
            parent, _, last = parent.rpartition(".")  # a CI bound: its CI may be null
        node = published.resolve(result, parent) if parent else result
        assert node is not None, number.path
        if "+" not in last and not last.endswith("%") and not last.isdigit():
            assert last in node, number.path


@pytest.mark.django_db
def test_the_demo_cohort_reproduces_the_papers_tables_ii_and_iv():
    """The synthetic demo cohort (``seed_demo``) is shaped like the published study."""
    from django.core.management import call_command

    call_command("seed_demo", stdout=io.StringIO())
    fisher = tables.study_tables(None)
    wald = tables.study_tables(None, p_method="wald", include_regression=False)
    rows = published.compare(fisher, wald)
    by_label = {(r["source"], r["label"]): r for r in rows}
    for source in ("Table II", "Table IV"):
        statuses = {r["status"] for r in rows if r["source"] == source}
        assert statuses == {published.REPRODUCED}, source
    assert by_label[("Results", "3 T MRI PPV %")]["status"] == published.DIFFERS
    assert by_label[("Results", "Patients")]["status"] == published.REPRODUCED
    # The paper's p-values are Wald: most Table I p-values Fisher does not give, Wald does.
    wald_explained = [r for r in rows if r["source"] == "Table I" and "Wald" in (r["reason"] or "")]
    assert len(wald_explained) >= 10

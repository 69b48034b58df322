"""Fill the configured database with N synthetic, valid patients, fast.

Usage::

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_1m \\
        .venv/bin/python benchmarks/make_cohort.py 1000000 --sites 20

    DEBUG=1 DATABASE_URL=sqlite:////tmp/bench/n100k.sqlite3 \\
        .venv/bin/python benchmarks/make_cohort.py 100000

The database must be migrated first (``manage.py migrate``). Patients are
appended after any already present (ids and study IDs continue), so running
twice with 500,000 gives 1,000,000.

Every patient has a screening log entry (eligible, consent given, enrolled), and
~15% more are screened and not enrolled (12% not eligible, 3% consent refused); the
patients lost to follow-up are excluded from the analysis (an exclusion in force),
as the study workflow records them (issue 5).

Every patient gets the five case-report-form sections (except ~1% still waiting
for their 3-month follow-up, who have no follow-up row yet), with values drawn
column by column with numpy and valid under every model rule: the ranges of
``rules.RANGES`` and the category codes (the database check constraints),
branching (DWI-ASPECTS only in the anterior, pc-ASPECTS only in the posterior
circulation, MT details only when MT was performed), the cross-field rules of
``rules.RULES`` (onset <= door <= groin < end, discharge on or after the door
date, follow-up after discharge, mRS 6 at 3 months if and only if a death date
on or before the follow-up, sICH only with ICH) and completeness (a section is
``complete`` only when every applicable field is filled; ~3% unknown onsets and
~2% patients lost to follow-up are ``draft`` sections with blanks, as in real
registries). ``--check`` (default 200) re-reads that many random patients
through the ORM and runs ``full_clean()`` on every record as a proof.

Rows are written without the ORM, in one transaction, by ``registry.models.bulk``
(binary ``COPY`` on PostgreSQL, ``executemany`` on SQLite), which also computes
each patient's stored columns from its sections. The django-simple-history tables
are *not* filled: a benchmark cohort has no edit history (a real registry's
history tables grow with edits, not with the number of patients, and no page or
table reads them in bulk).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _django  # noqa: E402

CHUNK = 200_000
EPOCH_LOCAL = np.datetime64("2016-01-01T00:00", "m")
SPAN_MINUTES = 10 * 365 * 24 * 60  # onsets spread over ten years

ANTERIOR_SITES = np.array(["ica_extra", "ica_intra", "m1", "m2"], dtype=object)
POSTERIOR_SITES = np.array(["va_extra", "va_intra", "ba"], dtype=object)
MTICI = np.array(["0", "1", "2a", "2b", "2c", "3"], dtype=object)
SELF_EXPANDING_DEVICES = np.array(
    ["Acclino 4.0 x 25", "Enterprise 4.5 x 22", "Neuroform Atlas 3.0 x 21"], dtype=object
)
BALLOON_DEVICES = np.array(["Apollo 2.5 x 13", "Integrity 2.25 x 12"], dtype=object)


def site_weights(k: int) -> np.ndarray:
    """Unequal site sizes (a few large centres, many small), largest first."""
    w = 1.0 / np.arange(1, k + 1) ** 0.5
    return w / w.sum()


class Columns:
    """Columns of one table: numpy arrays keyed by database column, with null masks."""

    def __init__(self, n: int):
        self.n = n
        self.values: dict[str, np.ndarray] = {}
        self.kinds: dict[str, str] = {}
        self.nulls: dict[str, np.ndarray | None] = {}

    def add(self, column: str, kind: str, values, null: np.ndarray | None = None) -> None:
        """``kind``: int, bool, str, datetime (local naive datetime64[m]), date, now."""
        if np.isscalar(values) or values is None:
            values = np.full(self.n, values, dtype=object)
        self.values[column] = np.asarray(values)
        self.kinds[column] = kind
        self.nulls[column] = None if null is None or not null.any() else null


def _choice(rng, options, n, p=None):
    return np.asarray(options, dtype=object)[rng.choice(len(options), size=n, p=p)]


def _clip_int(values, low, high) -> np.ndarray:
    return np.clip(np.rint(values), low, high).astype(np.int64)


def generate(rng, n: int, first_id: int, site_ids, site_codes) -> dict[str, Columns]:
    """Columns for ``n`` patients with ids ``first_id...``, keyed by model name."""
    ids = np.arange(first_id, first_id + n, dtype=np.int64)
    site_index = rng.choice(len(site_ids), size=n, p=site_weights(len(site_ids)))
    # Study IDs are site-prefixed, as multi-centre registries number them; this is
    # also the order the patient list sorts by.
    study_ids = (
        pd.Series(np.asarray(site_codes, dtype=object)[site_index])
        + "-"
        + pd.Series(ids).astype(str).str.zfill(8)
    ).to_numpy(dtype=object)

    patient = Columns(n)
    patient.add("id", "int", ids)
    patient.add("study_id", "str", study_ids)
    patient.add("site_id", "int", np.asarray(site_ids, dtype=np.int64)[site_index])
    patient.add("sex", "str", np.where(rng.random(n) < 0.4, "female", "male").astype(object))
    patient.add("age_years", "int", _clip_int(rng.normal(64, 13, n), 18, 100))
    patient.add("created_at", "now", None)

    # --- admission: onset <= door (both local wall-clock minutes) ---------------
    onset = EPOCH_LOCAL + rng.integers(0, SPAN_MINUTES, n).astype("timedelta64[m]")
    onset_to_door = _clip_int(np.exp(rng.normal(np.log(240), 0.7, n)), 20, 24 * 60)
    door = onset + onset_to_door.astype("timedelta64[m]")
    onset_unknown = rng.random(n) < 0.03
    admission = Columns(n)
    admission.add("patient_id", "int", ids)
    admission.add("onset_time", "datetime", onset, null=onset_unknown)
    admission.add("door_time", "datetime", door)
    admission.add("transfer", "bool", rng.random(n) < 0.4)
    admission.add("nihss_admission", "int", _clip_int(rng.normal(15, 6, n), 0, 42))
    admission.add(
        "premorbid_mrs", "int", rng.choice(6, size=n, p=[0.6, 0.2, 0.1, 0.05, 0.03, 0.02])
    )
    admission.add(
        "admission_mrs", "int", rng.choice(6, size=n, p=[0.01, 0.02, 0.05, 0.12, 0.35, 0.45])
    )
    for name, share in (
        ("hypertension", 0.65),
        ("smoking", 0.3),
        ("diabetes", 0.2),
        ("myocardial_infarction", 0.08),
        ("atrial_fibrillation", 0.15),
        ("chronic_kidney_disease", 0.07),
        ("dysphagia", 0.3),
        ("iv_thrombolysis", 0.25),
    ):
        admission.add(name, "bool", rng.random(n) < share)
    _bookkeeping(admission, complete=~onset_unknown)

    # --- imaging: ASPECTS branch on circulation ---------------------------------
    anterior = rng.random(n) < 0.75
    mri_site = np.where(
        anterior,
        _choice(rng, ANTERIOR_SITES, n, p=[0.1, 0.25, 0.45, 0.2]),
        _choice(rng, POSTERIOR_SITES, n, p=[0.15, 0.35, 0.5]),
    )
    mri_occlusion = rng.random(n) < 0.8
    imaging = Columns(n)
    imaging.add("patient_id", "int", ids)
    imaging.add("circulation", "str", np.where(anterior, "anterior", "posterior").astype(object))
    imaging.add(
        "mri_diagnosis", "str", np.where(mri_occlusion, "occlusion", "stenosis").astype(object)
    )
    imaging.add("mri_site", "str", mri_site)
    imaging.add("swi_clot", "bool", rng.random(n) < 0.6)
    imaging.add("dwi_aspects", "int", _clip_int(rng.normal(8, 1.8, n), 0, 10), null=~anterior)
    imaging.add("pc_aspects", "int", _clip_int(rng.normal(7, 2, n), 0, 10), null=anterior)
    _bookkeeping(imaging, complete=np.ones(n, dtype=bool))

    # --- procedure: door <= groin < end; MT details only when MT performed ------
    groin = door + _clip_int(np.exp(rng.normal(np.log(60), 0.5, n)), 10, 600).astype(
        "timedelta64[m]"
    )
    end = groin + _clip_int(rng.normal(70, 30, n), 15, 300).astype("timedelta64[m]")
    mt = rng.random(n) < 0.7
    dsa_agrees = rng.random(n) < 0.9
    dsa_site = np.where(
        rng.random(n) < 0.9,
        mri_site,
        np.where(
            anterior,
            _choice(rng, ANTERIOR_SITES, n),
            _choice(rng, POSTERIOR_SITES, n),
        ),
    )
    self_expanding = rng.random(n) < 0.55
    procedure = Columns(n)
    procedure.add("patient_id", "int", ids)
    procedure.add(
        "anesthesia", "str", np.where(rng.random(n) < 0.6, "sedation", "general").astype(object)
    )
    procedure.add("groin_puncture_time", "datetime", groin)
    procedure.add("procedure_end_time", "datetime", end)
    procedure.add(
        "dsa_diagnosis",
        "str",
        np.where(mri_occlusion == dsa_agrees, "occlusion", "stenosis").astype(object),
    )
    procedure.add("dsa_site", "str", dsa_site)
    procedure.add("mt_performed", "bool", mt)
    procedure.add(
        "mt_technique",
        "str",
        _choice(rng, ["aspiration", "stent_retriever", "combined"], n, p=[0.4, 0.35, 0.25]),
        null=~mt,
    )
    procedure.add(
        "mt_passes",
        "int",
        rng.choice(np.arange(1, 6), size=n, p=[0.4, 0.3, 0.15, 0.1, 0.05]),
        null=~mt,
    )
    procedure.add(
        "mtici_after_mt",
        "str",
        _choice(rng, MTICI, n, p=[0.2, 0.2, 0.3, 0.15, 0.1, 0.05]),
        null=~mt,
    )
    procedure.add(
        "stent_type",
        "str",
        np.where(self_expanding, "self_expanding", "balloon_expandable").astype(object),
    )
    procedure.add(
        "stent_device",
        "str",
        np.where(
            self_expanding,
            _choice(rng, SELF_EXPANDING_DEVICES, n),
            _choice(rng, BALLOON_DEVICES, n),
        ),
    )
    procedure.add("post_dilation", "bool", rng.random(n) < 0.2)
    procedure.add("residual_stenosis_pct", "int", _clip_int(rng.normal(15, 12, n), 0, 100))
    procedure.add("dapt_loading", "bool", rng.random(n) < 0.7)
    procedure.add(
        "final_mtici", "str", _choice(rng, MTICI, n, p=[0.03, 0.03, 0.06, 0.28, 0.2, 0.4])
    )
    _bookkeeping(procedure, complete=np.ones(n, dtype=bool))

    # --- complications: sICH only with ICH; discharge on/after the door date ----
    door_date = door.astype("datetime64[D]")
    ich = rng.random(n) < 0.18
    swelling = rng.random(n) < 0.1
    discharge_date = door_date + rng.integers(2, 31, n).astype("timedelta64[D]")
    discharge_mrs = rng.choice(7, size=n, p=[0.12, 0.16, 0.16, 0.16, 0.16, 0.16, 0.08])
    complications = Columns(n)
    complications.add("patient_id", "int", ids)
    complications.add("ich", "bool", ich)
    complications.add("sich", "bool", ich & (rng.random(n) < 0.4))
    complications.add("new_infarct", "bool", rng.random(n) < 0.2)
    complications.add("cerebral_swelling", "bool", swelling)
    complications.add("decompressive_craniectomy", "bool", swelling & (rng.random(n) < 0.3))
    complications.add("metabolic_acidosis", "bool", rng.random(n) < 0.04)
    complications.add("discharge_date", "date", discharge_date)
    complications.add("discharge_mrs", "int", discharge_mrs)
    _bookkeeping(complications, complete=np.ones(n, dtype=bool))

    # --- follow-up: after discharge; mRS 6 iff death on/before the follow-up ----
    has_followup = rng.random(n) >= 0.01
    lost = rng.random(n) < 0.02
    followup_date = discharge_date + rng.integers(80, 101, n).astype("timedelta64[D]")
    mrs_3m = np.where(
        discharge_mrs == 6,
        6,
        rng.choice(7, size=n, p=[0.15, 0.15, 0.15, 0.15, 0.15, 0.12, 0.13]),
    )
    # Died in hospital: between the door and discharge dates; later: before follow-up.
    last_day = np.where(discharge_mrs == 6, discharge_date, followup_date)
    span = (last_day - door_date).astype(np.int64)
    death_date = door_date + np.floor(rng.random(n) * (span + 1)).astype("timedelta64[D]")
    followup = Columns(n)
    followup.add("patient_id", "int", ids)
    followup.add("followup_date", "date", followup_date, null=lost)
    followup.add("mrs_3m", "int", mrs_3m, null=lost)
    followup.add(
        "followup_method",
        "str",
        np.where(rng.random(n) < 0.7, "telephone", "clinic").astype(object),
        null=lost,
    )
    followup.add("rehabilitation", "bool", rng.random(n) < 0.5, null=lost)
    followup.add("death_date", "date", death_date, null=lost | (mrs_3m != 6))
    _bookkeeping(followup, complete=~lost)
    followup = _take(followup, has_followup)
    # The patients' stored columns (mrs_3m_missing, sections_complete) are computed
    # from these sections by registry.models.bulk, by their definitions.
    patient_sites = np.asarray(site_ids, dtype=np.int64)[site_index]

    return {
        "Patient": patient,
        "Admission": admission,
        "Imaging": imaging,
        "Procedure": procedure,
        "Complications": complications,
        "FollowUp": followup,
        "ScreeningEntry": screening_log(rng, ids, patient_sites, door_date, site_ids),
        # The patients lost to follow-up are excluded from the analysis, as a study
        # nurse records it once the follow-up window has closed.
        "PatientExclusion": exclusions(
            ids[lost & has_followup], followup_date[lost & has_followup]
        ),
    }


def screening_log(rng, ids, patient_sites, door_date, site_ids) -> Columns:
    """A screening entry for every patient (eligible, consent given, enrolled), and
    about 15 % more screened patients who were not: 12 % not eligible (a criterion of
    the paper's Figure 1) and 3 % eligible whose consent was refused."""
    from registry.models import ConsentBy, ScreeningExclusion

    n, extra = len(ids), int(round(len(ids) * 0.15))
    refused = np.arange(extra) < int(round(len(ids) * 0.03))
    extra_sites = rng.choice(np.asarray(site_ids, dtype=np.int64), size=extra)
    extra_dates = door_date[rng.integers(0, n, extra)] if n else door_date[:0]
    eligible = np.concatenate([np.ones(n, dtype=bool), refused])
    reasons = _choice(rng, ScreeningExclusion.values, extra, p=[0.35, 0.3, 0.25, 0.1])
    consent = _choice(rng, [ConsentBy.PATIENT, ConsentBy.REPRESENTATIVE], n, p=[0.3, 0.7])
    dates = np.concatenate([door_date, extra_dates])
    log = Columns(n + extra)
    log.add("site_id", "int", np.concatenate([patient_sites, extra_sites]))
    log.add("screening_date", "date", dates)
    log.add("screening_number", "str", "")
    log.add("eligible", "bool", eligible)
    log.add("exclusion_reason", "str", np.concatenate([np.full(n, None), reasons]), null=eligible)
    given_by = np.concatenate([consent, np.full(extra, ConsentBy.REFUSED, dtype=object)])
    log.add("consent_given_by", "str", given_by, null=~eligible)
    log.add("consent_date", "date", dates, null=np.arange(n + extra) >= n)
    log.add(
        "patient_id",
        "int",
        np.concatenate([ids, np.zeros(extra, dtype=np.int64)]),
        null=np.arange(n + extra) >= n,
    )
    log.add("note", "str", "")
    log.add("created_at", "now", None)
    return log


def exclusions(ids, followup_date) -> Columns:
    """Exclusions in force, lost to follow-up, dated at the planned follow-up."""
    today = np.datetime64(dt.date.today(), "D")
    rows = Columns(len(ids))
    rows.add("patient_id", "int", ids)
    rows.add("reason", "str", "lost_to_followup")
    rows.add("note", "str", "")
    rows.add("excluded_on", "date", np.minimum(followup_date, today))
    rows.add("changed_at", "now", None)
    return rows


def _bookkeeping(cols: Columns, complete: np.ndarray) -> None:
    cols.add("status", "str", np.where(complete, "complete", "draft").astype(object))
    cols.add("completed_at", "now", None, null=~complete)
    cols.add("updated_at", "now", None)
    cols.add("version", "int", np.ones(cols.n, dtype=np.int64))


def _take(cols: Columns, keep: np.ndarray) -> Columns:
    out = Columns(int(keep.sum()))
    for name, values in cols.values.items():
        null = cols.nulls[name]
        out.add(name, cols.kinds[name], values[keep], None if null is None else null[keep])
    return out


# --- writing -------------------------------------------------------------------


def _python(cols: Columns, name: str, now: dt.datetime) -> list:
    """One column as the values of its model field (None for NULL)."""
    kind, values, null = cols.kinds[name], cols.values[name], cols.nulls[name]
    if kind == "now":
        out = [now] * cols.n
    elif kind == "datetime":
        from django.conf import settings

        local = pd.DatetimeIndex(values.astype("datetime64[s]")).tz_localize(settings.TIME_ZONE)
        out = list(local.tz_convert("UTC").to_pydatetime())
    elif kind == "date":
        out = values.astype("datetime64[D]").tolist()
    elif kind == "bool":
        out = values.astype(bool).tolist()
    elif kind == "int":
        out = values.astype(np.int64).tolist()
    else:
        out = list(values)
    if null is not None:
        for index in np.flatnonzero(null).tolist():
            out[index] = None
    return out


def records(model, cols: Columns, now: dt.datetime) -> list[dict]:
    """The table's rows as records for registry.models.bulk; a column not generated
    gets the field's default, or NULL."""
    from registry.models import bulk

    key = model._meta.pk.attname
    names = [key] if key in cols.values else []
    names += [name for name in bulk.record_columns(model) if name != key]
    fields = {f.attname: f for f in model._meta.concrete_fields}
    columns = []
    for name in names:
        field = fields[name]
        if name in cols.values:
            columns.append(_python(cols, name, now))
        elif field.has_default() and not callable(field.default):
            columns.append([field.get_default()] * cols.n)
        elif field.null:
            columns.append([None] * cols.n)
        else:
            raise SystemExit(f"make_cohort: no generator for required {model.__name__}.{name}")
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def new_patients(tables: dict[str, Columns], now: dt.datetime) -> list:
    """The patients of ``tables`` with their sections, for ``Writer.patients_insert``."""
    from registry.models import SECTION_MODELS, Patient, bulk

    sections = {
        model: {r["patient_id"]: r for r in records(model, tables[model.__name__], now)}
        for model in SECTION_MODELS
    }
    return [
        bulk.NewPatient(
            patient,
            {m: rows[patient["id"]] for m, rows in sections.items() if patient["id"] in rows},
        )
        for patient in records(Patient, tables["Patient"], now)
    ]


def ensure_sites(k: int):
    from registry.models import Site

    for i in range(1, k + 1):
        Site.objects.get_or_create(code=f"S{i:03d}", defaults={"name": f"Hospital {i:03d}"})
    sites = list(Site.objects.filter(code__regex=r"^S[0-9]{3}$").order_by("code")[:k])
    return [s.pk for s in sites], [s.code for s in sites]


def make_cohort(n: int, sites: int = 20, seed: int = 7, quiet: bool = False) -> float:
    """Append ``n`` patients; returns the seconds taken."""
    from django.db import connection
    from django.db.models import Max

    from registry.models import SECTION_MODELS, Patient, PatientExclusion, ScreeningEntry, bulk

    started = time.perf_counter()
    vendor = connection.vendor
    site_ids, site_codes = ensure_sites(sites)
    first = (Patient.objects.aggregate(m=Max("id"))["m"] or 0) + 1
    models = {m.__name__: m for m in (Patient, *SECTION_MODELS, ScreeningEntry, PatientExclusion)}
    rng = np.random.default_rng([seed, first])
    # No attribution: the cohort's history tables stay empty.
    with bulk.writing() as writer:
        done = 0
        while done < n:
            size = min(CHUNK, n - done)
            tables = generate(rng, size, first + done, site_ids, site_codes)
            writer.patients_insert(patients=new_patients(tables, writer.now))
            for name, cols in tables.items():
                model = models[name]
                if model is not Patient and model not in SECTION_MODELS:
                    writer.insert(model=model, records=records(model, cols, writer.now))
            done += size
            if not quiet:
                print(f"  {done:,} patients ({time.perf_counter() - started:.1f} s)", flush=True)
    if vendor == "postgresql":
        # Fresh statistics and visibility map, as autovacuum would leave them.
        with connection.cursor() as cursor:
            for model in models.values():
                cursor.execute(f"VACUUM (ANALYZE) {model._meta.db_table}")
    else:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return time.perf_counter() - started


def check_sample(k: int, seed: int = 7) -> int:
    """Run ``full_clean()`` on every record of ``k`` random patients; returns the count."""
    from registry.models import Patient, PatientExclusion, ScreeningEntry

    ids = list(Patient.objects.values_list("id", flat=True).order_by("id"))
    if not ids:
        return 0
    rng = np.random.default_rng(seed)
    chosen = rng.choice(ids, size=min(k, len(ids)), replace=False).tolist()
    for patient in Patient.objects.filter(id__in=chosen).select_related(
        "site", "admission", "imaging", "procedure", "complications", "followup"
    ):
        patient.full_clean()
        for section in patient.sections().values():
            if section is not None:
                section.full_clean()
    # The screening log (enrolled or not) and the exclusions, as many again.
    for entry in ScreeningEntry.objects.order_by("?")[:k]:
        entry.full_clean()
    for exclusion in PatientExclusion.objects.order_by("?")[:k]:
        exclusion.full_clean()
    return len(chosen)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", type=int, help="number of patients to add")
    parser.add_argument("--sites", type=int, default=20, help="number of sites (default 20)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--check", type=int, default=200, help="patients re-validated with full_clean()"
    )
    args = parser.parse_args(argv)
    _django.setup()
    from django.db import connection

    print(f"make_cohort: {args.n:,} patients, {args.sites} sites, {connection.vendor}")
    seconds = make_cohort(args.n, sites=args.sites, seed=args.seed)
    print(f"make_cohort: {args.n:,} patients in {seconds:.1f} s ({args.n / seconds:,.0f}/s)")
    if args.check:
        checked = check_sample(args.check, seed=args.seed)
        print(f"make_cohort: full_clean() passed on {checked} random patients")


if __name__ == "__main__":
    main()

"""A deterministic SYNTHETIC cohort shaped like the published study.

No real patient is in it. The 85 rows are invented so that the registry's
tables reproduce the counts published in the rescue intracranial stenting
paper (``shared/study/rescue-intracranial-stenting-paper.txt``); see
``docs/demo-cohort.md`` for which published numbers contradict each other and
how the cohort settles them.

The generator works in two groups, poor outcome at 3 months (mRS 4-6, 38
patients) and non-poor (mRS 0-3, 47 patients), and places every exposure of
Table I with an exact count inside each group, so both the margins of the
Results section and the Table I cells hold. Joint cells (Tables II and IV,
complications, recanalization) are placed explicitly. A fixed seed makes two
runs give the same rows.

Rows are typed values keyed by interchange column (the same shape the
importer produces from a CSV file), so the demo goes through the importer's
validation. A column the plan leaves open is the typical synthetic patient's
(``registry.synthetic``), who is like the study's patients where the demo relies
on it: hypertension, pre-procedural mRS 5, DAPT loading, telephone follow-up.
"""

from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

from registry import synthetic

SEED = 20200518  # date of the study's ethics approval
SITE_CODE = "SIS"
SITE_NAME = "Can Tho S.I.S General Hospital"
STUDY_ID_PREFIX = "DEMO-"
N_PATIENTS = 85
N_POOR = 38  # mRS 4-6 at 3 months; 47 "non-poor" (55.3%)
HOSPITAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
FIRST_ONSET = dt.date(2019, 8, 3)
LAST_ONSET = dt.date(2021, 5, 28)

# Ages: range 28-101, 23 aged >= 70, mean 63.1, SD 13.8 (Results).
AGES_70_PLUS = [70, 70, 71, 71, 72, 73, 73, 74, 75, 75, 76, 77, 78, 78, 79, 80, 81, 82, 83]
AGES_70_PLUS += [85, 87, 90, 101]
AGES_UNDER_70 = [28, 31, 37, 38, 40, 40, 43, 44, 44, 45, 47, 47, 47, 47, 48, 48, 49, 49, 51]
AGES_UNDER_70 += [51, 51, 53, 53, 55, 57, 57, 57, 57, 59, 59, 60, 60, 61, 61, 62, 64, 65, 65]
AGES_UNDER_70 += [65, 65, 66, 66, 66, 66, 68, 68, 68] + [69] * 15

# Exposures of Table I: (count among poor outcome, count among non-poor).
# Poor counts are Table I's; non-poor counts make the Results' margins.
GROUP_COUNTS: dict[str, tuple[int, int]] = {
    "age_70_plus": (16, 7),  # 23 aged >= 70
    "female": (15, 10),  # 60 men
    "smoking": (23, 17),  # 40
    "diabetes": (21, 18),  # 39
    "myocardial_infarction": (14, 16),  # 30
    "iv_thrombolysis": (3, 5),  # 8 (Discussion)
    "onset_over_6h": (24, 19),  # 43
    "dysphagia": (13, 6),  # RR 1.8 with 13 poor
    "posterior": (15, 8),  # 23
    "atrial_fibrillation": (1, 0),  # RR 2.3: every exposed patient poor
    "chronic_kidney_disease": (5, 0),
    "sedation": (1, 0),
    "self_expanding": (12, 12),  # 24; RR 1.2 (the Table I cell "24" is the exposed count)
    "only_ris": (17, 22),  # 39
    "procedure_over_60min": (32, 28),  # RR 2.2 with 32 poor
    "no_rehabilitation": (7, 3),  # RR 1.7, NNH 3
}

# Published counts the cohort meets exactly (checked by tests/test_demo.py).
TARGETS = {
    "patients": 85,
    "age_min": 28,
    "age_max": 101,
    "age_70_plus": 23,
    "men": 60,
    "onset_over_6h": 43,
    "hypertension": 85,
    "smoking": 40,
    "diabetes": 39,
    "myocardial_infarction": 30,
    "posterior": 23,
    "self_expanding": 24,
    "only_ris": 39,
    "new_infarct": 3,
    "ich": 9,
    "sich": 4,
    "metabolic_acidosis": 1,
    "decompressive_craniectomy": 3,
    "any_complication": 13,
    "admission_mrs_5": 85,
    "non_poor_discharge": 17,
    "non_poor_3m": 47,
    "dead_3m": 16,
    "iv_thrombolysis": 8,
    "recanalized": 82,
    # Table II: (DSA diagnosis, MRI diagnosis) -> patients
    "table2": {
        ("occlusion", "occlusion"): 66,
        ("occlusion", "stenosis"): 1,
        ("stenosis", "occlusion"): 5,
        ("stenosis", "stenosis"): 13,
    },
    # Table IV: (MT performed, clot on SWI) -> patients
    "table4": {(True, True): 28, (True, False): 18, (False, True): 13, (False, False): 26},
}


class _Picker:
    """Exact-count random choices from explicit pools, reproducible by seed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def pick(self, pool, k: int, exclude=()) -> set[int]:
        candidates = sorted(set(pool) - set(exclude))
        if k > len(candidates):
            raise ValueError(f"cannot pick {k} of {len(candidates)}")
        return set(self.rng.sample(candidates, k))


def _plan(picker: _Picker) -> list[dict]:
    """Decide every patient's categories (group-level exact counts)."""
    poor = set(range(N_POOR))
    good = set(range(N_POOR, N_PATIENTS))  # "non-poor", named short
    everyone = poor | good
    pick = picker.pick

    def by_group(name: str, exclude=(), within=None) -> set[int]:
        k_poor, k_good = GROUP_COUNTS[name]
        p = poor if within is None else poor & within
        g = good if within is None else good & within
        return pick(p, k_poor, exclude) | pick(g, k_good, exclude)

    posterior = by_group("posterior")
    anterior = everyone - posterior

    # Complications (disjoint, 13 patients = 15.3%); sICH: 3/62 anterior, 1/23 posterior.
    sich = pick(poor & anterior, 3) | pick(poor & posterior, 1)
    other_ich = pick(poor, 2, sich) | pick(good, 3)
    ich = sich | other_ich
    new_infarct = pick(poor, 2, ich) | pick(good, 1, ich)
    chronic_kidney = by_group("chronic_kidney_disease", ich | new_infarct)
    acidosis = pick(chronic_kidney, 1)  # due to renal failure
    # Decompressive craniectomy: 1 for haemorrhagic transformation, 2 for swelling.
    dc_ich = pick(sich, 1)
    swelling = pick(poor, 2, ich | new_infarct | acidosis)
    craniectomy = dc_ich | swelling

    # Deaths by 3 months: 16 (18.8%), 7/62 anterior; 3 in hospital, 13 after discharge.
    dead = pick(poor & anterior, 7) | pick(poor & posterior, 9)
    died_in_hospital = pick(dead, 3)
    mrs5 = (sich | craniectomy) - dead
    mrs5 |= pick(poor - dead, 12 - len(mrs5), mrs5)
    mrs_3m = {}
    for i in dead:
        mrs_3m[i] = 6
    for i in poor - dead:
        mrs_3m[i] = 5 if i in mrs5 else 4
    good_list = sorted(good)
    picker.rng.shuffle(good_list)
    # 38 good (mRS 0-2, 44.7%) and 9 fair (mRS 3).
    for n, i in enumerate(good_list):
        mrs_3m[i] = 0 if n < 10 else 1 if n < 24 else 2 if n < 38 else 3

    # Imaging scores: pc-ASPECTS < 6 in 8 posterior patients, all poor;
    # DWI-ASPECTS < 8 in 15 poor (24.2% of 62) and 13 non-poor anterior patients.
    pc_low = pick(poor & posterior, 8)
    dwi_low = pick(poor & anterior, 15) | pick(good & anterior, 13)

    # Stents: 2 of 4 sICH and none of the 3 new infarcts in self-expanding (Table III).
    se_sich = pick(sich, 2)
    se_rest_poor = pick(
        poor, GROUP_COUNTS["self_expanding"][0] - len(se_sich & poor), ich | new_infarct
    )
    se_rest_good = pick(good, GROUP_COUNTS["self_expanding"][1], ich | new_infarct)
    self_expanding = se_sich | se_rest_poor | se_rest_good

    # Table IV: SWI clot x MT, split over the outcome groups.
    cells = {  # (MT, clot): (poor, non-poor)
        (True, True): (13, 15),
        (True, False): (8, 10),
        (False, True): (6, 7),
        (False, False): (11, 15),
    }
    mt, clot = set(), set()
    left_poor, left_good = set(poor), set(good)
    for (is_mt, has_clot), (k_poor, k_good) in cells.items():
        chosen = pick(left_poor, k_poor) | pick(left_good, k_good)
        left_poor -= chosen
        left_good -= chosen
        if is_mt:
            mt |= chosen
        if has_clot:
            clot |= chosen
    # 44 of the 46 MT patients stayed below mTICI 2b after MT; 2 reoccluded from 2b.
    mt_reached_2b = pick(mt, 2)

    # Table II: DSA (reference) x 3 T MRI. The one false negative is posterior.
    false_negative = pick(posterior, 1)
    false_positive = pick(everyone, 5, false_negative)
    true_negative = pick(everyone, 13, false_negative | false_positive)
    dsa_stenosis = false_positive | true_negative
    mri_stenosis = false_negative | true_negative

    # Recanalization failures: 3 (2/62 anterior, 1/23 posterior); one anterior good.
    failed = pick(good & anterior, 1, {i for i in good if mrs_3m[i] > 2})
    failed |= pick(poor & anterior, 1) | pick(poor & posterior, 1)

    rtpa = by_group("iv_thrombolysis", ich)  # none of the rTPA patients had ICH
    no_rehab_poor = set(died_in_hospital)
    no_rehab_poor |= pick(poor, GROUP_COUNTS["no_rehabilitation"][0] - 3, died_in_hospital)
    no_rehab = no_rehab_poor | pick(good, GROUP_COUNTS["no_rehabilitation"][1])
    discharge_non_poor = pick(good, 17)

    simple = {
        name: by_group(name)
        for name in (
            "age_70_plus",
            "female",
            "smoking",
            "diabetes",
            "myocardial_infarction",
            "onset_over_6h",
            "dysphagia",
            "atrial_fibrillation",
            "sedation",
            "procedure_over_60min",
        )
    }

    plans = []
    for i in range(N_PATIENTS):
        plans.append(
            {
                "poor": i in poor,
                "posterior": i in posterior,
                "mrs_3m": mrs_3m[i],
                "dead": i in dead,
                "died_in_hospital": i in died_in_hospital,
                "ich": i in ich,
                "sich": i in sich,
                "new_infarct": i in new_infarct,
                "metabolic_acidosis": i in acidosis,
                "chronic_kidney_disease": i in chronic_kidney,
                "craniectomy": i in craniectomy,
                "swelling": i in swelling,
                "pc_low": i in pc_low,
                "dwi_low": i in dwi_low,
                "self_expanding": i in self_expanding,
                "mt": i in mt,
                "clot": i in clot,
                "mt_reached_2b": i in mt_reached_2b,
                "dsa_stenosis": i in dsa_stenosis,
                "mri_stenosis": i in mri_stenosis,
                "failed": i in failed,
                "rtpa": i in rtpa,
                "no_rehab": i in no_rehab,
                "discharge_non_poor": i in discharge_non_poor,
                **{name: i in members for name, members in simple.items()},
            }
        )
    return plans


ANTERIOR_SITES = ("ica_intra", "m1", "m1", "m1", "m2")
POSTERIOR_SITES = ("va_intra", "ba", "ba")
STENTS = {
    "self_expanding": ("SE stent 3.5 x 20 mm (synthetic)", "SE stent 4.0 x 25 mm (synthetic)"),
    "balloon_expandable": ("BE stent 2.5 x 13 mm (synthetic)", "BE stent 3.0 x 15 mm (synthetic)"),
}


def _at(day: dt.date, minutes: int) -> dt.datetime:
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=HOSPITAL_TZ)
    return (midnight + dt.timedelta(minutes=minutes)).astimezone(HOSPITAL_TZ)


def _times(n: int, plan: dict, rng: random.Random) -> dict:
    """The n-th patient's times, onsets spread evenly over the study's inclusion period."""
    span = (LAST_ONSET - FIRST_ONSET).days
    onset_day = FIRST_ONSET + dt.timedelta(days=round((n - 1) * span / (N_PATIENTS - 1)))
    onset = _at(onset_day, rng.randrange(0, 24 * 60, 5))
    if plan["onset_over_6h"]:
        door = onset + dt.timedelta(minutes=rng.randrange(6 * 60 + 15, 20 * 60, 5))
    else:
        door = onset + dt.timedelta(minutes=rng.randrange(60, 6 * 60, 5))
    groin = door + dt.timedelta(minutes=rng.randrange(25, 120, 5))
    if plan["procedure_over_60min"]:
        duration = rng.randrange(65, 160, 5)
    else:
        duration = rng.randrange(30, 61, 5)
    discharge = door.date() + dt.timedelta(days=rng.randrange(5, 21))
    followup = door.date() + dt.timedelta(days=rng.randrange(88, 96))
    death = None
    if plan["died_in_hospital"]:
        death = discharge
    elif plan["dead"]:
        death = discharge + dt.timedelta(days=rng.randrange(3, (followup - discharge).days))
    return {
        "onset_time": onset,
        "door_time": door,
        "groin_puncture_time": groin,
        "procedure_end_time": groin + dt.timedelta(minutes=duration),
        "discharge_date": discharge,
        "followup_date": followup,
        "death_date": death,
    }


def _imaging(plan: dict, rng: random.Random) -> dict:
    posterior = plan["posterior"]
    site = rng.choice(POSTERIOR_SITES if posterior else ANTERIOR_SITES)
    pc_aspects = rng.randrange(2, 6) if plan["pc_low"] else rng.randrange(6, 11)
    dwi_aspects = rng.randrange(3, 8) if plan["dwi_low"] else rng.randrange(8, 11)
    return {
        "circulation": "posterior" if posterior else "anterior",
        "mri_diagnosis": "stenosis" if plan["mri_stenosis"] else "occlusion",
        "mri_site": site,
        "swi_clot": plan["clot"],
        # Both scores are drawn; the one outside the patient's circulation is left
        # blank by its branch (registry.synthetic.row).
        "dwi_aspects": dwi_aspects,
        "pc_aspects": pc_aspects,
        "dsa_diagnosis": "stenosis" if plan["dsa_stenosis"] else "occlusion",
        "dsa_site": site,
    }


def _discharge_mrs(plan: dict, rng: random.Random) -> int:
    mrs_3m = plan["mrs_3m"]
    if plan["died_in_hospital"]:
        return 6
    if plan["discharge_non_poor"]:
        return min(3, mrs_3m + 1)
    if plan["poor"]:
        return 5 if mrs_3m >= 5 else rng.choice((4, 5))
    return rng.choice((4, 4, 5))


def _results(plan: dict, rng: random.Random) -> dict:
    mtici_after_mt = "2b" if plan["mt_reached_2b"] else rng.choice(("0", "1", "1", "2a", "2a"))
    final_mtici = "2a" if plan["failed"] else rng.choice(("2b", "2c", "3", "3"))
    discharge_mrs = _discharge_mrs(plan, rng)
    residual = rng.randrange(0, 25, 5)
    return {
        "mtici_after_mt": mtici_after_mt,
        "final_mtici": final_mtici,
        "discharge_mrs": discharge_mrs,
        "residual_stenosis_pct": residual,
        "post_dilation": residual >= 15,
    }


def _quality(n: int, plan: dict, times: dict, results: dict) -> dict:
    """The quality-of-care times and the 24-hour NIHSS, drawn by a generator of their
    own so that the columns published in the paper keep their seeded values."""
    rng = random.Random(SEED * 1000 + n)
    door, groin = times["door_time"], times["groin_puncture_time"]
    end = times["procedure_end_time"]
    to_groin = int((groin - door).total_seconds() // 60)
    imaging = door + dt.timedelta(minutes=min(rng.randrange(8, 40), max(to_groin - 5, 0)))
    needle = door + dt.timedelta(minutes=min(rng.randrange(20, 75), to_groin))
    to_end = int((end - groin).total_seconds() // 60)
    reperfusion = groin + dt.timedelta(minutes=rng.randrange(5, to_end) if to_end > 5 else to_end)
    poor = plan["poor"] or results["final_mtici"] == "2a"
    return {
        "imaging_time": imaging,
        "needle_time": needle,  # blank unless thrombolysed (its branch)
        "reperfusion_time": reperfusion,  # blank unless reperfused (its branch)
        "nihss_24h": rng.randrange(10, 30) if poor else rng.randrange(0, 12),
    }


# Plan entries that are their column's value as they are.
AS_PLANNED = (
    "smoking",
    "diabetes",
    "myocardial_infarction",
    "atrial_fibrillation",
    "chronic_kidney_disease",
    "dysphagia",
    "ich",
    "sich",
    "new_infarct",
    "metabolic_acidosis",
    "mrs_3m",
)


def _row(n: int, plan: dict, age: int, rng: random.Random) -> dict:
    """One patient's interchange row (typed values) from its plan; the columns the
    plan leaves open are the typical synthetic patient's (registry.synthetic)."""
    # The seeded draws run in this order (times, imaging, results, then the keyword
    # arguments from left to right): another order gives other rows.
    times, imaging, results = _times(n, plan, rng), _imaging(plan, rng), _results(plan, rng)
    mt = plan["mt"]
    stent_type = "self_expanding" if plan["self_expanding"] else "balloon_expandable"
    return synthetic.row(
        study_id=f"{STUDY_ID_PREFIX}{n:03d}",
        site=SITE_CODE,
        sex="female" if plan["female"] else "male",
        age_years=age,
        **times,
        **imaging,
        **results,
        **_quality(n, plan, times, results),
        **{name: plan[name] for name in AS_PLANNED},
        transfer=plan["rtpa"] or rng.random() < 0.5,
        nihss_admission=rng.randrange(12, 30) if plan["poor"] else rng.randrange(8, 24),
        premorbid_mrs=rng.choice((0, 0, 0, 1)),
        iv_thrombolysis=plan["rtpa"],
        anesthesia="sedation" if plan["sedation"] else "general",
        mt_performed=mt,
        mt_technique=rng.choice(("aspiration", "aspiration", "combined")) if mt else None,
        mt_passes=rng.randrange(1, 5) if mt else None,
        stent_type=stent_type,
        stent_device=rng.choice(STENTS[stent_type]),
        cerebral_swelling=plan["swelling"],
        decompressive_craniectomy=plan["craniectomy"],
        rehabilitation=not plan["no_rehab"],
    )


def cohort_rows(seed: int = SEED) -> list[dict]:
    """The 85 synthetic patients as typed interchange rows, DEMO-001 .. DEMO-085."""
    picker = _Picker(seed)
    plans = _plan(picker)
    # Ages: the 70+ ages go to the patients planned 70+, in a seeded order.
    old = [i for i, p in enumerate(plans) if p["age_70_plus"]]
    young = [i for i, p in enumerate(plans) if not p["age_70_plus"]]
    ages = dict(zip(old, picker.rng.sample(AGES_70_PLUS, len(AGES_70_PLUS)), strict=True))
    ages.update(zip(young, picker.rng.sample(AGES_UNDER_70, len(AGES_UNDER_70)), strict=True))
    # Shuffle so that study IDs do not follow the outcome groups.
    order = list(range(N_PATIENTS))
    picker.rng.shuffle(order)
    return [_row(n, plans[i], ages[i], picker.rng) for n, i in enumerate(order, start=1)]


def synthetic_rows(count: int, prefix: str = "SYN-", seed: int = SEED) -> list[dict]:
    """``count`` valid synthetic rows (the demo cohort repeated), e.g. for benchmarks."""
    base = cohort_rows(seed)
    width = max(5, len(str(count)))
    rows = []
    for n in range(count):
        row = dict(base[n % len(base)])
        row["study_id"] = f"{prefix}{n + 1:0{width}d}"
        rows.append(row)
    return rows

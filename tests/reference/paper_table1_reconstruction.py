"""Rebuild the paper's Table I rows and test which p-value they print (Wald or Fisher).

PYTHONPATH=. .venv/bin/python tests/reference/paper_table1_reconstruction.py

For each row, every exposed-group size n1 is tried (85 patients with 38 poor outcomes;
DWI-ASPECTS within the 62 anterior patients, 23 poor; pc-ASPECTS within the 23 posterior,
15 poor); n1 is kept when RR and both CI limits, rounded or truncated to one decimal, equal
the printed ones. For each kept n1 the Katz-Wald and Fisher p are compared with the printed
p at its printed number of decimals. The result is summarised in docs/statistics.md.
"""

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from analytics.stats import compare_risks

# key | poor outcome among exposed | RR | CI low | CI high | printed p  (paper, Table I)
ROWS = """age_70_plus|16|1.9|1.3|3|0.002
female|15|1.6|0.9|2.5|0.06
smoking|23|1.7|1.1|2.8|0.03
hypertension|38|0.9|0.1|6.4|0.9
atrial_fibrillation|1|2.3|1.8|2.9|<0.0001
chronic_kidney_disease|5|2.3|1.8|2.9|<0.0001
diabetes|21|1.5|0.9|2.3|0.1
myocardial_infarction|14|1.1|0.7|1.7|0.8
iv_thrombolysis|3|0.8|0.3|2.1|0.7
dapt_loading|38|0.9|0.1|6.4|0.9
onset_over_6h|24|1.7|1.1|2.8|0.04
dysphagia|13|1.8|1.1|2.7|0.01
dwi_aspects_lt8|15|2.3|1.1|4.6|0.02
pc_aspects_lt6|8|2.1|1.2|3.7|0.01
posterior_circulation|15|1.8|1.1|2.7|0.01
sedation|1|2.3|1.8|2.9|<0.0001
self_expanding_stent|24|1.2|0.7|1.9|0.5
only_ris|17|0.9|0.6|1.5|0.8
procedure_over_60min|32|2.2|1.1|4.6|0.03
any_complication|13|1.7|1.1|2.7|0.02
new_infarct|2|1.5|0.7|3.5|0.3
sich|4|2.4|1.8|3.1|<0.0001
decompressive_craniectomy|3|2.3|1.8|3.1|<0.0001
no_rehabilitation|7|1.7|1.1|2.8|0.03"""
POPULATION = {"dwi_aspects_lt8": (62, 23), "pc_aspects_lt6": (23, 15)}


def printed_as(x: float, text: str) -> bool:
    exact = Decimal(str(x))
    step = Decimal("0.1")
    return Decimal(text) in (exact.quantize(step, ROUND_HALF_UP), exact.quantize(step, ROUND_DOWN))


def p_matches(p: float, printed: str) -> bool:
    if printed.startswith("<"):
        return p < 0.0001
    step = Decimal(1).scaleb(-len(printed.split(".")[1]))
    return Decimal(str(p)).quantize(step, ROUND_HALF_UP) == Decimal(printed)


def candidates(a: int, rr: str, low: str, high: str, total: int, events: int):
    for n1 in range(max(a, 1), total):
        c, n0 = events - a, total - n1
        if not 0 <= c <= n0:
            continue
        row = compare_risks(a, n1, c, n0, p_method="wald")
        if row.rr_ci and all(map(printed_as, (row.rr, *row.rr_ci), (rr, low, high))):
            yield n1, c, n0, row.p, compare_risks(a, n1, c, n0).p


for line in ROWS.splitlines():
    key, a, rr, low, high, printed = line.split("|")
    total, events = POPULATION.get(key, (85, 38))
    found = list(candidates(int(a), rr, low, high, total, events))
    print(f"{key:27} printed p {printed:8}", end=" ")
    if not found:
        print("not reconstructible")
        continue
    for n1, c, n0, wald, fisher in found:
        print(
            f"[{a}/{n1} vs {c}/{n0}: wald {wald:.3g} {'ok' if p_matches(wald, printed) else '--'}"
            f", fisher {fisher:.3g} {'ok' if p_matches(fisher, printed) else '--'}]",
            end=" ",
        )
    print()

"""Valid interchange rows as CSV text, for the import/export tests."""

import csv
import io

from registry.interchange import columns as interchange

VALID = {
    "study_id": "T-001",
    "site": "A",
    "sex": "male",
    "age_years": "63",
    "onset_time": "2020-06-01T08:00",
    "door_time": "2020-06-01T12:00",
    "transfer": "0",
    "nihss_admission": "18",
    "premorbid_mrs": "0",
    "admission_mrs": "5",
    "hypertension": "1",
    "smoking": "0",
    "diabetes": "0",
    "myocardial_infarction": "0",
    "atrial_fibrillation": "0",
    "chronic_kidney_disease": "0",
    "dysphagia": "0",
    "iv_thrombolysis": "0",
    "circulation": "anterior",
    "mri_diagnosis": "occlusion",
    "mri_site": "m1",
    "swi_clot": "1",
    "dwi_aspects": "8",
    "pc_aspects": "",
    "anesthesia": "general",
    "groin_puncture_time": "2020-06-01T13:00",
    "procedure_end_time": "2020-06-01T13:50",
    "dsa_diagnosis": "occlusion",
    "dsa_site": "m1",
    "mt_performed": "1",
    "mt_technique": "aspiration",
    "mt_passes": "2",
    "mtici_after_mt": "2a",
    "stent_type": "self_expanding",
    "stent_device": "Acclino 4.0 x 25",
    "post_dilation": "0",
    "residual_stenosis_pct": "10",
    "dapt_loading": "1",
    "final_mtici": "3",
    "ich": "0",
    "sich": "0",
    "new_infarct": "0",
    "cerebral_swelling": "0",
    "decompressive_craniectomy": "0",
    "metabolic_acidosis": "0",
    "discharge_date": "2020-06-12",
    "discharge_mrs": "4",
    "followup_date": "2020-08-30",
    "mrs_3m": "2",
    "followup_method": "telephone",
    "rehabilitation": "1",
    "death_date": "",
}


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

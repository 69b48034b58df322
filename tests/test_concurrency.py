"""Two nurses saving the same section at the same moment, in real concurrent transactions.

Optimistic locking (a version number checked under ``SELECT ... FOR UPDATE``) must refuse
the second save instead of letting it overwrite the first one silently. Only PostgreSQL
runs two writing transactions at once; SQLite serialises writers on the whole file, and
its in-memory test database is not shared between threads, so this test needs PostgreSQL
(CI runs the suite on both).
"""

import threading
import time

import pytest
from django.db import connection, connections, transaction

from registry import services
from registry.models import Admission

from .factories import AdmissionFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="needs two concurrent writing transactions"
    ),
]


def test_second_of_two_concurrent_saves_is_refused_and_the_first_is_kept(nurse, site_a):
    admission = AdmissionFactory(patient__site=site_a, nihss_admission=10)
    patient, version = admission.patient, admission.version
    first_saved = threading.Event()
    outcome: dict[str, object] = {}

    def save(name: str, nihss: int, hold: bool) -> None:
        try:
            with transaction.atomic():
                if not hold:
                    first_saved.wait(5)  # start while the first transaction is still open
                services.section_save(
                    patient=patient,
                    section_key="admission",
                    user=nurse,
                    data={"nihss_admission": nihss},
                    complete=False,
                    expected_version=version,
                )
                if hold:
                    first_saved.set()
                    time.sleep(0.5)  # keep the row locked while the other one tries
            outcome[name] = "saved"
        except services.StaleVersion as error:
            outcome[name] = error
        finally:
            connections.close_all()

    first = threading.Thread(target=save, args=("first", 20, True))
    second = threading.Thread(target=save, args=("second", 30, False))
    started = time.monotonic()
    first.start()
    second.start()
    first.join(10)
    second.join(10)

    assert outcome["first"] == "saved"
    assert isinstance(outcome["second"], services.StaleVersion)
    # The second save waited for the first transaction's row lock, then saw the new version.
    assert time.monotonic() - started >= 0.5
    stored = Admission.objects.get(pk=patient.pk)
    assert stored.nihss_admission == 20
    assert stored.version == version + 1
    # What the second nurse is told names the field that changed and its stored value.
    assert "NIHSS" in str(outcome["second"].messages[0])

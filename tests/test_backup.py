"""Backups: data → `backup` → a fresh database → `restore` → the very same data.

The commands run in subprocesses against real file (SQLite) or scratch (PostgreSQL)
databases, as an operator would run them; the in-memory test database of
pytest-django cannot be backed up.
"""

import json
import os
import sqlite3
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from registry.backup import BackupError, check_sqlite_backup, sqlite_copy

BASE_DIR = Path(__file__).resolve().parent.parent

CREATE_DATA = """
from tests.factories import full_patient, PatientFactory, AdmissionFactory, SiteFactory, UserFactory
from registry.choices import Role
a, b = SiteFactory(code="A", name="Hôpital A"), SiteFactory(code="B", name="Site B")
UserFactory(username="nurse_a", role=Role.DATA_ENTRY, sites=[a])
for n in range(3):
    full_patient(study_id=f"A-{n}", site=a)
full_patient(study_id="B-0", site=b, age_years=81, sex="female")
AdmissionFactory(patient=PatientFactory(study_id="B-partial", site=b), nihss_admission=None)
from registry.freezes import freeze_create
freeze_create(name="before-backup", reason="kept by the backup", user=None)
print("created")
"""

# Every row of every table of the registry's apps (sections, history, users, sites...),
# plus the full identifiable interchange export (CSV).
DUMP = """
import json
from django.apps import apps
from django.core.serializers.json import DjangoJSONEncoder
out = {}
for label in ("registry", "analytics", "auth"):
    try:
        config = apps.get_app_config(label)
    except LookupError:
        continue
    for model in config.get_models():
        rows = list(model.objects.order_by("pk").values())
        for row in rows:  # binary columns (a freeze's rows) as hex
            binary = {k: v for k, v in row.items() if isinstance(v, (bytes, memoryview))}
            row.update({k: bytes(v).hex() for k, v in binary.items()})
        out[model._meta.label] = rows
from django.db import transaction
from registry.interchange.exporter import registry_export
with transaction.atomic():  # the export's audit-log row is not part of the comparison
    out["export.csv"] = registry_export(user=None, fmt="csv", deidentified=False).content.decode()
    transaction.set_rollback(True)
print(json.dumps(out, cls=DjangoJSONEncoder, sort_keys=True))
"""


def manage(env, *args, check=True):
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def dump(env) -> dict:
    data = json.loads(manage(env, "shell", "-c", DUMP).stdout.strip().splitlines()[-1])
    assert len(data["registry.Patient"]) == 5
    assert [f["name"] for f in data["registry.DataFreeze"]] == ["before-backup"]
    assert data["export.csv"].count("\n") >= 6  # header + 5 patients
    return data


def base_env(**extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["REGISTRY_TESTING"] = "1"
    env.update(extra)
    return env


def round_trip(source_env, target_env, backup_file, make_fresh_target):
    """Fill the source, back it up, restore into a fresh, migrated, empty target.

    ``make_fresh_target`` clones the just-migrated empty source (cheaper than a
    second `migrate`).
    """
    manage(source_env, "migrate", "--noinput")
    make_fresh_target()
    manage(source_env, "shell", "-c", CREATE_DATA)
    before = dump(source_env)
    out = manage(source_env, "backup", str(backup_file)).stdout
    assert "Backed up" in out
    assert stat.S_IMODE(backup_file.stat().st_mode) == 0o600  # identifiable data

    assert "already holds" not in manage(target_env, "restore", str(backup_file)).stderr
    assert dump(target_env) == before

    refused = manage(target_env, "restore", str(backup_file), check=False)
    assert refused.returncode != 0
    assert "already holds patients" in refused.stderr
    manage(target_env, "restore", str(backup_file), "--force")
    assert dump(target_env) == before


def test_sqlite_backup_restored_into_a_fresh_database_gives_identical_data(tmp_path):
    source = base_env(REGISTRY_VAR_DIR=str(tmp_path / "source"))
    target = base_env(REGISTRY_VAR_DIR=str(tmp_path / "target"))
    (tmp_path / "source").mkdir()
    (tmp_path / "target").mkdir()

    def fresh_target():
        sqlite_copy(
            tmp_path / "source" / "registry.sqlite3", tmp_path / "target" / "registry.sqlite3"
        )

    round_trip(source, target, tmp_path / "backups" / "registry.sqlite3.bak", fresh_target)


def test_restore_refuses_a_file_that_is_not_a_backup_of_this_database_kind(tmp_path):
    env = base_env(REGISTRY_VAR_DIR=str(tmp_path))
    bogus = tmp_path / "notes.txt"
    bogus.write_text("patients: A-1, A-2\n")
    result = manage(env, "restore", str(bogus), check=False)
    assert result.returncode != 0
    assert "is not a backup" in result.stderr


def test_sqlite_copy_is_a_complete_consistent_image(tmp_path):
    source, target = tmp_path / "a.sqlite3", tmp_path / "b.sqlite3"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE t (x TEXT)")
        conn.executemany("INSERT INTO t VALUES (?)", [("é",), ("x" * 100_000,)])
    conn.close()
    sqlite_copy(source, target)
    with sqlite3.connect(target) as copy:
        assert copy.execute("SELECT x FROM t ORDER BY rowid").fetchall() == [
            ("é",),
            ("x" * 100_000,),
        ]
    copy.close()


def test_a_sqlite_file_that_is_not_the_registry_is_refused(tmp_path):
    other = tmp_path / "other.sqlite3"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(BackupError, match="not a backup of the registry"):
        check_sqlite_backup(other)


@pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
    reason="the PostgreSQL round trip runs in the PostgreSQL pass (DATABASE_URL=postgres://...)",
)
def test_postgresql_backup_restored_into_a_fresh_database_gives_identical_data(tmp_path):
    conf = connection.settings_dict
    server = f"postgres://{conf['USER'] or 'postgres'}"
    if conf.get("PASSWORD"):
        server += f":{conf['PASSWORD']}"
    server += f"@{conf['HOST'] or '127.0.0.1'}:{conf['PORT'] or 5432}"
    names = [f"h5_backup_{kind}_{uuid.uuid4().hex[:8]}" for kind in ("source", "target")]
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{names[0]}"')

        def fresh_target():
            admin.execute(f'CREATE DATABASE "{names[1]}" TEMPLATE "{names[0]}"')

        try:
            source, target = (
                base_env(DATABASE_URL=f"{server}/{name}", REGISTRY_VAR_DIR=str(tmp_path))
                for name in names
            )
            round_trip(source, target, tmp_path / "registry.pgdump", fresh_target)
        finally:
            for name in names:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

"""Consistent backups of the configured database, and restoring them.

PostgreSQL: ``pg_dump --format=custom`` (one snapshot) and ``pg_restore --clean
--if-exists --single-transaction`` (all or nothing). SQLite: the online backup
API, which copies a consistent image page by page while the registry runs, in
both directions. Backup files hold identifiable health data: they are written
readable by their owner only (mode 0600) and appear complete or not at all.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import tempfile
from pathlib import Path

from django.db import DatabaseError, connections

PG_MAGIC = b"PGDMP"
SQLITE_MAGIC = b"SQLite format 3\x00"


class BackupError(Exception):
    """A backup or restore that could not be done; the message says why."""


def vendor(alias: str = "default") -> str:
    return connections[alias].vendor


def database_holds_patients(alias: str = "default") -> bool:
    """Whether the database already holds patients (an absent table counts as empty)."""
    from .models import Patient

    try:
        return Patient.objects.using(alias).exists()
    except DatabaseError:
        return False


def backup(path: str | os.PathLike, alias: str = "default") -> Path:
    """Write a consistent dump of the database ``alias`` to ``path``."""
    target = Path(path).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    kind = vendor(alias)
    # Write beside the target, then rename: a failed backup never leaves a partial file.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    os.chmod(tmp_name, 0o600)
    try:
        if kind == "postgresql":
            _run(["pg_dump", "--format=custom", "--file", tmp_name, *_pg_args(alias)], alias)
        elif kind == "sqlite":
            sqlite_copy(_sqlite_name(alias), tmp_name)
        else:
            raise BackupError(f"No backup method for a {kind} database.")
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def restore(path: str | os.PathLike, *, force: bool = False, alias: str = "default") -> None:
    """Replace what the database ``alias`` holds with the backup at ``path``.

    Refuses a database that holds patients unless ``force``.
    """
    source = Path(path)
    if not source.is_file():
        raise BackupError(f"{source} is not a file.")
    kind = vendor(alias)
    magic = source.read_bytes()[:16] if source.stat().st_size else b""
    expected = PG_MAGIC if kind == "postgresql" else SQLITE_MAGIC
    if not magic.startswith(expected):
        raise BackupError(f"{source} is not a backup of a {kind} database (made by `backup`).")
    if database_holds_patients(alias) and not force:
        raise BackupError(
            "The database already holds patients; restoring would replace them. "
            "Use --force if that is what you want."
        )
    connections[alias].close()
    if kind == "postgresql":
        _run(["pg_restore", "--list", str(source)], alias)  # readable, before dropping anything
        _run(
            [
                "pg_restore",
                "--clean",
                "--if-exists",
                "--single-transaction",
                "--no-owner",
                "--no-privileges",
                *_pg_args(alias),
                str(source),
            ],
            alias,
        )
    else:
        check_sqlite_backup(source)
        sqlite_copy(source, _sqlite_name(alias))


def sqlite_copy(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Copy the SQLite database ``source`` onto ``target`` with the online backup API.

    The copy is a consistent image even while others write to ``source``; ``target``
    is replaced as a whole (under its own write lock).
    """
    src = sqlite3.connect(f"file:{Path(source)}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(str(target))
        try:
            with dst:
                src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


def check_sqlite_backup(path: str | os.PathLike) -> None:
    """Refuse a damaged file or one that is not a registry database."""
    conn = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
    try:
        (status,) = conn.execute("PRAGMA integrity_check").fetchone()
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a readable SQLite database: {exc}") from exc
    finally:
        conn.close()
    if status != "ok":
        raise BackupError(f"{path} is damaged: {status}")
    if not {"django_migrations", "registry_patient"} <= tables:
        raise BackupError(f"{path} is not a backup of the registry.")


def _sqlite_name(alias: str) -> str:
    name = str(connections[alias].settings_dict["NAME"])
    if name == ":memory:" or name.startswith("file:memorydb") or "mode=memory" in name:
        raise BackupError("An in-memory SQLite database cannot be backed up or restored.")
    return name


def _pg_args(alias: str) -> list[str]:
    conf = connections[alias].settings_dict
    args = ["--dbname", conf["NAME"]]
    if conf.get("HOST"):
        args += ["--host", str(conf["HOST"])]
    if conf.get("PORT"):
        args += ["--port", str(conf["PORT"])]
    if conf.get("USER"):
        args += ["--username", str(conf["USER"])]
    return args


def _run(command: list[str], alias: str) -> None:
    env = dict(os.environ)
    password = connections[alias].settings_dict.get("PASSWORD")
    if password:
        env["PGPASSWORD"] = str(password)  # not on the command line, where `ps` shows it
    try:
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise BackupError(f"{command[0]} is not installed (postgresql-client).") from exc
    if result.returncode != 0:
        raise BackupError(f"{command[0]} failed: {result.stderr.strip()}")

"""Uploaded import files waiting for their confirmation, and their previews.

An upload is written with mode 0600 into a private folder (mode 0700,
``settings.IMPORT_UPLOAD_DIR``) under a random token kept in the user's session,
which nothing serves. It is deleted on confirmation, cancellation, a new upload,
sign-out, and by :func:`uploads_purge` once older than
``IMPORT_UPLOAD_MAX_AGE_HOURS`` (run on each upload and by ``manage.py
purge_import_uploads`` from cron). The preview of a file is computed once and kept
beside it when it refuses the file, so reloading the page does not check it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver

SESSION_KEY = "registry_import_pending"
TOKEN_RE = re.compile(r"^[0-9a-f]{32}$")
SHOWN_PROBLEMS = 200  # the preview lists the first 200 problems, with their count


def upload_dir() -> Path:
    """The private folder of pending uploads, created (and kept) with mode 0700."""
    folder = Path(settings.IMPORT_UPLOAD_DIR)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if folder.stat().st_mode & 0o077:
        folder.chmod(0o700)  # made by hand or by another umask: close it again
    return folder


def pending_path(pending: dict) -> Path:
    suffix = ".xlsx" if pending["filename"].lower().endswith(".xlsx") else ".csv"
    return upload_dir() / f"{pending['token']}{suffix}"


def _preview_path(pending: dict) -> Path:
    return upload_dir() / f"{pending['token']}.preview.json"


def upload_save(*, upload, create_sites: bool) -> dict:
    """Write an uploaded file (mode 0600); what the session keeps to find it again,
    with the SHA-256 of its bytes (the confirmation writes exactly what was previewed)."""
    uploads_purge()
    pending = {
        "token": secrets.token_hex(16),
        "filename": Path(upload.name).name,
        "create_sites": create_sites,
    }
    digest = hashlib.sha256()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(pending_path(pending), flags, 0o600), "wb") as stream:
        for chunk in upload.chunks():
            stream.write(chunk)
            digest.update(chunk)
    pending["digest"] = digest.hexdigest()
    return pending


def file_digest(pending: dict) -> str:
    """The SHA-256 of the pending file as it is now."""
    digest = hashlib.sha256()
    with open(pending_path(pending), "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def pending_of(session) -> dict | None:
    """The session's pending upload, if its file is still there."""
    pending = session.get(SESSION_KEY)
    if not pending or not TOKEN_RE.match(str(pending.get("token", ""))):
        return None
    return pending if pending_path(pending).is_file() else None


def upload_discard(session) -> None:
    """Forget the session's pending upload and delete its file and preview."""
    pending = session.pop(SESSION_KEY, None)
    if pending and TOKEN_RE.match(str(pending.get("token", ""))):
        pending_path(pending).unlink(missing_ok=True)
        _preview_path(pending).unlink(missing_ok=True)


def uploads_purge(*, max_age_hours: int | None = None, now: float | None = None) -> int:
    """Delete pending uploads (and previews) older than ``max_age_hours``; how many."""
    hours = max_age_hours or getattr(settings, "IMPORT_UPLOAD_MAX_AGE_HOURS", 24)
    oldest = (now or time.time()) - hours * 3600
    removed = 0
    for path in upload_dir().iterdir():
        if path.is_file() and path.stat().st_mtime < oldest:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


@receiver(user_logged_out)
def _discard_on_sign_out(sender, request, **kwargs) -> None:
    if request is not None and hasattr(request, "session"):
        upload_discard(request.session)


@dataclass
class Refusal:
    """What the preview page shows of a refused file: the first problems and their count."""

    filename: str
    rows: int
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0

    @classmethod
    def of(cls, result) -> Refusal:
        return cls(
            filename=result.filename,
            rows=result.rows,
            problems=[str(problem) for problem in result.problems[:SHOWN_PROBLEMS]],
            problem_count=len(result.problems),
        )


def refusal_load(pending: dict) -> Refusal | None:
    """The kept refusal of the pending file, None when it was not refused."""
    try:
        return Refusal(**json.loads(_preview_path(pending).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def refusal_save(pending: dict, refusal: Refusal) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(_preview_path(pending), flags, 0o600), "w") as stream:
        json.dump(asdict(refusal), stream)

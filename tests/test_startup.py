"""Commands that compute no statistics, and web workers at boot, start without the
heavy scientific libraries: they are imported inside the functions that use them.

Each check runs in a fresh interpreter, since this test process has imported them all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("pandas", "scipy", "statsmodels", "matplotlib", "openpyxl", "numpy", "firthmodels")

# Prints which heavy libraries are loaded after the given steps ran.
SCRIPT = """
import json, os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
import django
django.setup()
from django.core.management import call_command, get_commands, load_command_class
step = sys.argv[1]
if step == "check":
    call_command("check", verbosity=0)
elif step == "wsgi":
    from django.urls import resolve
    import config.wsgi
    resolve("/")  # the URLconf, with every view module, as on a worker's first request
elif step == "commands":
    for name, app in get_commands().items():
        load_command_class(app, name).create_parser("manage.py", name).format_help()
print(json.dumps(sorted(m for m in HEAVY if m in sys.modules)))
"""


def _heavy_loaded_after(step: str, heavy: tuple[str, ...] = HEAVY) -> list[str]:
    env = {**os.environ, "DEBUG": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {heavy!r}\n{SCRIPT}", step],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_manage_py_check_leaves_the_scientific_libraries_unloaded():
    assert _heavy_loaded_after("check") == []


def test_a_web_worker_loads_the_urlconf_and_every_view_without_them():
    assert _heavy_loaded_after("wsgi") == []


# The REST API's libraries load with the first API request (registry/api/urls.py); only
# drf-spectacular's app (its package and its check, for its templates) is there before.
API_LIBRARIES = ("rest_framework", "drf_spectacular.utils", "drf_spectacular.openapi")


def test_manage_py_check_and_a_web_worker_start_without_the_api_libraries():
    assert _heavy_loaded_after("check", API_LIBRARIES) == []
    assert _heavy_loaded_after("wsgi", API_LIBRARIES) == []


def test_every_command_answers_help_without_them():
    assert _heavy_loaded_after("commands") == []


def test_the_probe_sees_a_library_that_a_statistics_function_imports():
    # The same interpreter set-up, once a statistic is computed, finds scipy: the
    # tests above fail if an import moves back to module level.
    env = {**os.environ, "DEBUG": "1", "PYTHONPATH": str(ROOT)}
    code = "from analytics import stats, cells\nimport sys\nstats.proportion(1, 2)\n"
    code += f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert "statsmodels" in result.stdout


# -- manage.py's exit ------------------------------------------------------------------


def _manage(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEBUG": "1"}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_a_finished_command_exits_with_its_output_whole_and_its_exit_handlers_run():
    # More than a pipe holds (64 KiB), written without a newline at the end: all of it
    # must reach the reader although the interpreter's own exit is skipped.
    code = (
        "import atexit, sys; atexit.register(print, 'exit handler ran');"
        "sys.stdout.write('x' * 200000)"
    )
    result = _manage("shell", "--no-startup", "--verbosity", "0", "--command", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "x" * 200000 + "exit handler ran\n"


def test_a_failing_command_still_exits_with_an_error_status():
    result = _manage("study_tables", "--format", "no-such-format")
    assert result.returncode == 2
    assert "no-such-format" in result.stderr

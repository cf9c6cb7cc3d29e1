"""The version matrix: `nox` runs the default session; `nox -s oldest newest` the ends.

* ``tests``: the current interpreter with what pip resolves today (what ``.ci/run`` runs);
* ``oldest``: Python 3.10 with every dependency at the floor ``pyproject.toml`` promises
  (``constraints/oldest.txt``);
* ``newest``: the newest Python here with the newest release of every dependency.

Each session installs the test, OCR and docs extras and runs the whole test suite under
``pytest -n 2`` (so the OCR tests and the strict docs build run at both ends too).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

PYTEST = ("pytest", "-n", "2", "-p", "no:cacheprovider")


def interpreter(version: str) -> str:
    """``python3.X`` from PATH when it runs, else one installed by pyenv (as on the project's
    machines, where only one pyenv version is global)."""
    found = shutil.which(f"python{version}")
    if found and subprocess.run([found, "-V"], capture_output=True).returncode == 0:
        return version
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates = sorted(glob.glob(os.path.join(root, "versions", f"{version}.*", "bin", "python")))
    return candidates[-1] if candidates else version


@nox.session(python=False)
def tests(session: nox.Session) -> None:
    """The README's test command in the current environment."""
    session.run("python", "-m", "pip", "install", "-q", "-e", ".[test,ocr,docs]")
    session.run("python", "-m", *PYTEST, *session.posargs)


@nox.session(python=interpreter("3.10"))
def oldest(session: nox.Session) -> None:
    """Python 3.10, every dependency at its floor."""
    session.install("-c", "constraints/oldest.txt", "-e", ".[test,ocr,docs]")
    session.run("python", "-m", "pip", "freeze", silent=False)
    session.run("python", "-m", *PYTEST, *session.posargs)


@nox.session(python=interpreter("3.13"))
def newest(session: nox.Session) -> None:
    """The newest Python here, every dependency at its newest release."""
    session.install("--upgrade", "--upgrade-strategy", "eager", "-e", ".[test,ocr,docs]")
    session.run("python", "-m", "pip", "freeze", silent=False)
    session.run("python", "-m", *PYTEST, *session.posargs)

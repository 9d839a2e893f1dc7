"""Installing and starting simgan_tf: every `python -m` entry point, the notebooks' Colab cell. (The
wheel itself: .ci/check-wheel, run by CI.)

The first code cell of every notebook installs the package on Colab from $SIMGAN_REPO_URL, else from
an uploaded wheel, else stops with one line saying how; it never tries a placeholder address, and
off Colab it installs nothing. Here it runs with Colab faked and pip recorded, in a folder that is
no checkout.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

FIND_SPEC = importlib.util.find_spec  # before any test patches it
NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def _setup_cell(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return "".join(next(c for c in cells if c["cell_type"] == "code")["source"])


def _run_cell(path, tmp_path, monkeypatch, colab=True, installed=False) -> list[list[str]]:
    """Execute the setup cell; returns the pip commands it ran."""
    calls, real_run = [], subprocess.run

    def run(cmd, *args, **kwargs):
        if "pip" not in cmd:  # the libraries the cell imports may run commands of their own
            return real_run(cmd, *args, **kwargs)
        calls.append([str(c) for c in cmd])

    monkeypatch.setattr(subprocess, "run", run)
    if colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))

    def find_spec(name, *args):
        # This process has the editable install: hide it unless the case says "installed".
        if name == "simgan_tf" and not installed:
            return None
        return FIND_SPEC(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.chdir(tmp_path)
    exec(compile(_setup_cell(path), str(path), "exec"), {"__name__": "__main__"})
    return calls


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_colab_cell_never_tries_a_placeholder(path):
    assert "<owner>" not in _setup_cell(path)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_colab_cell_installs_from_the_repo_url_else_a_wheel_else_stops(path, tmp_path, monkeypatch):
    url = "https://example.org/me/simgan_tf.git"
    monkeypatch.setenv("SIMGAN_REPO_URL", url)
    (tmp_path / "simgan_tf-0.1.0-py3-none-any.whl").write_bytes(b"")
    assert [c[-1] for c in _run_cell(path, tmp_path, monkeypatch)] == [f"git+{url}"]

    monkeypatch.delenv("SIMGAN_REPO_URL")
    wheel = str(tmp_path / "simgan_tf-0.1.0-py3-none-any.whl")
    assert [c[-1] for c in _run_cell(path, tmp_path, monkeypatch)] == [wheel]

    (tmp_path / "simgan_tf-0.1.0-py3-none-any.whl").unlink()
    with pytest.raises(SystemExit) as e:
        _run_cell(path, tmp_path, monkeypatch)
    message = str(e.value)
    assert "SIMGAN_REPO_URL" in message and ".whl" in message and "\n" not in message
    # Already installed (say, by hand): nothing to do, no stop.
    assert _run_cell(path, tmp_path, monkeypatch, installed=True) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_setup_cell_installs_nothing_off_colab(path, tmp_path, monkeypatch):
    monkeypatch.setenv("SIMGAN_REPO_URL", "https://example.org/me/simgan_tf.git")
    assert _run_cell(path, tmp_path, monkeypatch, colab=False) == []


ENTRY_POINTS = ("train", "refine", "evaluate", "simulate", "data", "bench")


def test_every_entry_point_runs_as_a_module():
    # A module without its `__main__` guard exits 0 and prints nothing: the README's commands
    # would silently do no work. Started together: each pays TensorFlow's import.
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", f"simgan_tf.{name}", "--help"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for name in ENTRY_POINTS
    }
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0 and out.startswith("usage: "), (name, out[-500:])

"""The companion notebooks (notebooks/*.ipynb) run top to bottom in smoke mode, and are committed in shape.

Each notebook is executed with nbclient in a fresh kernel with SIMGAN_SMOKE=1 and everything it writes
sent to a temporary folder (SIMGAN_NB_OUT); any failing cell fails the test. The executed copy is
discarded: the committed notebooks keep the outputs of their real run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = REPO / "notebooks"
NOTEBOOKS = [
    "01_data.ipynb",
    "02_networks.ipynb",
    "03_training.ipynb",
    "04_refine_and_evaluate.ipynb",
]
MAX_BYTES = 2_000_000


def _read(name: str) -> dict:
    return json.loads((NOTEBOOKS_DIR / name).read_text(encoding="utf-8"))


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return src if isinstance(src, str) else "".join(src)


def test_every_notebook_is_listed():
    assert sorted(p.name for p in NOTEBOOKS_DIR.glob("*.ipynb")) == NOTEBOOKS


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_in_shape(name):
    """Under 2 MB, Colab setup first, one `parameters` cell with the SMOKE switch, no failed cells."""
    assert (NOTEBOOKS_DIR / name).stat().st_size < MAX_BYTES
    cells = _read(name)["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert 'IN_COLAB = "google.colab" in sys.modules' in _source(code[0])
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    assert 'SMOKE = os.environ.get("SIMGAN_SMOKE", "0") == "1"' in _source(tagged[0])
    for cell in code:
        assert not [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    # Committed with the outputs of a real run: every code cell ran.
    assert all(c.get("execution_count") for c in code)


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_smoke_mode(name, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    out = tmp_path / "out"
    # The kernel inherits this environment.
    monkeypatch.setenv("SIMGAN_SMOKE", "1")
    monkeypatch.setenv("SIMGAN_NB_OUT", str(out))
    monkeypatch.setenv("SIMGAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the notebook's own inline backend
    nb = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(NOTEBOOKS_DIR)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
    # Nothing was written beside the committed notebooks.
    assert sorted(p.name for p in NOTEBOOKS_DIR.iterdir() if p.suffix != ".md") == NOTEBOOKS
    assert out.is_dir()

"""Every notebook in notebooks/ is committed without outputs and runs top to bottom in this venv's Python."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
STEPS = "20"  # DOMADAPT_NB_STEPS for the run: enough to exercise every cell, not to learn anything
ACCURACY = re.compile(r"^(?P<name>[^:\n]+): target accuracy (?P<value>\S+) %$", re.MULTILINE)
EXPECTED_RUNS = {"quickstart.ipynb": {"source-only", "DANN", "moment matching"}}
PROBE = "import sys; print('kernel python:', sys.executable)"


def this_python_kernel(tmp_path: Path) -> KernelManager:
    """A kernel manager that launches ipykernel with ``sys.executable``, whatever kernelspecs are installed.

    The ``python3`` spec found on the Jupyter path may belong to another installation (a user-level
    spec shadows the venv's), so the test writes its own spec and searches only there.
    """
    spec_dir = tmp_path / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "domadapt test kernel", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(spec_dir.parent)])
    return KernelManager(kernel_name="python3", kernel_spec_manager=specs)


def stdout_of(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.outputs if o.output_type == "stream" and o.name == "stdout")


def test_notebooks_are_found():
    assert NOTEBOOKS, f"no notebook under {ROOT / 'notebooks'}"
    assert set(EXPECTED_RUNS) <= {p.name for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_clean(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not dirty, (f"{path.name}: code cells {dirty} hold outputs or execution counts; clear them before "
                       "committing (jupyter nbconvert --clear-output --inplace)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_and_reports_accuracies(path, tmp_path, monkeypatch):
    monkeypatch.setenv("DOMADAPT_NB_STEPS", STEPS)  # the kernel inherits this process's environment
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(path, work / path.name)  # runs write under the notebook's folder: keep them in tmp
    nb = nbformat.read(work / path.name, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    km = this_python_kernel(tmp_path)
    assert km.kernel_spec.argv[0] == sys.executable
    # Raises CellExecutionError, naming the cell and the traceback, on the first cell that fails.
    NotebookClient(nb, km=km, timeout=300, startup_timeout=120, resources={"metadata": {"path": str(work)}}).execute()

    out = stdout_of(nb)
    assert f"kernel python: {sys.executable}" in out
    found = {m["name"]: m["value"] for m in ACCURACY.finditer(out)}
    assert found, f"{path.name}: printed no '<run>: target accuracy <value> %' line"
    for name, value in found.items():
        assert 0.0 <= float(value) <= 100.0, f"{path.name}: {name} accuracy {value!r} is not a percentage"
    if path.name in EXPECTED_RUNS:
        assert set(found) == EXPECTED_RUNS[path.name]
        assert f"{STEPS} training steps per model" in out  # the step budget reached the kernel

"""The notebooks run top to bottom in a fresh kernel, and the committed copies hold their outputs.

Re-execute them in place (after changing one):  python tests/test_notebooks.py [notebooks/NAME.ipynb ...]
"""
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXPECTED = ["01_dynamic_graphs", "02_static_graphs", "03_static_vs_dynamic", "04_training", "05_sequence_models"]


def execute(path: Path, timeout: int = 600):
    """Run the notebook at `path` in a fresh python3 kernel (working directory: its folder); returns it."""
    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def test_the_five_notebooks_exist():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_with_its_outputs(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "a notebook without code"
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), \
        f"{path.name} was not run top to bottom before it was saved: run python tests/test_notebooks.py {path}"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_a_fresh_kernel(path):
    nb = execute(path)  # raises CellExecutionError, naming the cell, if any cell fails
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code")


if __name__ == "__main__":
    for p in [Path(a).resolve() for a in sys.argv[1:]] or NOTEBOOKS:
        nbformat.write(execute(p), p)
        print(f"executed and saved {p.relative_to(ROOT)}")

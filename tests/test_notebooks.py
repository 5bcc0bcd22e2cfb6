"""The analysis notebooks run from a fresh clone, stored without outputs, on climode's public API only."""

import ast
import importlib
import os
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import HANG, ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NAMES = [path.name for path in NOTEBOOKS]


def _code(cell) -> ast.Module:
    """A code cell's Python, IPython magics (``%matplotlib inline``) left out."""
    return ast.parse("\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!"))))


def _private(module: str, name: str | None = None) -> str | None:
    """Why ``from module import name`` (or ``import module``) is not public API, else None."""
    if any(part.startswith("_") for part in module.split(".")):
        return f"{module} is a private module"
    if name is None:
        return None
    if name.startswith("_"):
        return f"{module}.{name} is private"
    public = getattr(importlib.import_module(module), "__all__", None)
    if public is not None and name not in public and not importlib.util.find_spec(f"{module}.{name}"):
        return f"{module}.{name} is not in {module}.__all__"
    return None


def test_every_notebook_is_listed_in_the_readme_and_stored_without_outputs():
    readme = (ROOT / "README.md").read_text()
    assert [n[:2] for n in NAMES] == ["01", "02", "03", "04", "05"]
    for path in NOTEBOOKS:
        assert f"notebooks/{path.name}" in readme, path.name
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and all(c.outputs == [] and c.execution_count is None for c in code), path.name
        assert nb.cells[0].cell_type == "markdown"  # it starts with what it shows
        assert any(c.cell_type == "markdown" and "## What we found" in c.source for c in nb.cells[-3:]), path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_code_cells_import_only_public_names(path):
    problems = []
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(_code(cell)):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "climode":
                problems += [_private(node.module, alias.name) for alias in node.names]
            elif isinstance(node, ast.Import):
                problems += [_private(a.name) for a in node.names if a.name.split(".")[0] == "climode"]
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "climode":
                import climode

                if node.attr not in climode.__all__:
                    problems.append(f"climode.{node.attr} is not in climode.__all__")
    assert [p for p in problems if p] == []


def test_the_public_api_check_catches_private_names():
    assert _private("climode.maps", "_coastline") == "climode.maps._coastline is private"
    assert _private("climode.data._private") == "climode.data._private is a private module"
    assert _private("climode.verification", "skill") is None  # a submodule
    assert _private("climode.verification", "verify") is None
    assert _private("climode.data", "prepare_inputs") == "climode.data.prepare_inputs is not in climode.data.__all__"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_the_notebook_runs_from_a_fresh_checkout(path, tmp_path, monkeypatch):
    """Every cell runs (a failing cell fails the test), in a copy of notebooks/ whose ``../runs`` is
    temporary, with the kernel on this interpreter."""
    from nbclient import NotebookClient

    where = tmp_path / "notebooks"
    where.mkdir()
    shutil.copy(path, where / path.name)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("CLIMODE_CACHE", str(tmp_path / "cache"))
    # one thread, as every test: two kernels of two threads each on two cores spin-wait (10x slower)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(where / path.name, as_version=4)
    NotebookClient(nb, timeout=HANG, kernel_name="python3", resources={"metadata": {"path": str(where)}}).execute()
    shown = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in shown if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in shown) >= 2  # its pictures were drawn
    assert re.search(r"\w", "".join(o.get("text", "") for o in shown))  # and its findings printed

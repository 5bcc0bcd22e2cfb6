"""The package's layering: the network imports alone, lower layers never import higher ones, no
module-level import cycle (checked on the source, so a new import that breaks it fails here)."""

import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "climode"
# lower layers (the network, the data path) and what they may not import: the layers built on them
LOWER = ("climode.model", "climode.data", "climode.io", "climode.geo", "climode.video")
HIGHER = (
    "climode.forecast",
    "climode.forecasting",
    "climode.train",
    "climode.verify",
    "climode.protocols",
    "climode.evaluate",
    "climode.maps",
)
DATA_STACK = ("xarray", "dask", "zarr", "cftime", "cartopy", "pandas", "netCDF4", "matplotlib", "lightning")


def _modules() -> dict[str, Path]:
    def name(path: Path) -> str:
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    return {name(p): p for p in ROOT.rglob("*.py")}


def _imports(module: str, path: Path, known: dict) -> set[str]:
    """The climode modules ``module`` imports at module level, with the packages whose ``__init__``
    such an import runs (all but those ``module`` lies in)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    targets = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            targets |= {f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names}
        elif isinstance(node, ast.Import):
            targets |= {a.name for a in node.names}
    out = set()
    for target in targets:
        parts = target.split(".")
        for k in range(2, len(parts) + 1):
            name = ".".join(parts[:k])
            if name in known and not (module == name or module.startswith(name + ".")):
                out.add(name)
    return out


def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {m: _imports(m, p, known) for m, p in known.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle_through_a_package_init():
    graph = {"climode.model": {"climode.baselines"}, "climode.baselines": {"climode.model"}, "climode.x": set()}
    assert _cycles(graph) == [["climode.baselines", "climode.model"]]


def test_no_module_level_import_cycle():
    assert _cycles(_graph()) == []


@pytest.mark.parametrize("lower", LOWER)
def test_lower_layers_import_nothing_from_higher_ones(lower):
    graph = _graph()
    bad = {
        m: sorted(d for d in deps if d.startswith(HIGHER))
        for m, deps in graph.items()
        if m == lower or m.startswith(lower + ".")
    }
    assert {m: d for m, d in bad.items() if d} == {}


def test_the_network_imports_and_runs_without_the_data_stack():
    """``import climode.model`` on a machine without xarray, dask, zarr, cftime, cartopy (or pandas,
    matplotlib, lightning): every model of the registry builds and forecasts."""
    code = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {DATA_STACK!r}:
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        import torch
        from climode.model import MODELS, ModelConfig, build
        from climode.normalise import Normalised
        frames, times, query = torch.rand(1, 3, 3, 16, 16), torch.tensor([0.0, 1.0, 2.0]), torch.tensor([3.0])
        for name in MODELS:
            model = build(ModelConfig(architecture=name, width=4, n_in=3, frame_shape=[16, 16]))
            assert model(frames, times, query)["frames"].shape == (1, 1, 3, 16, 16), name
        print(sorted(m for m in sys.modules if m.split(".")[0] in {DATA_STACK!r}))
    """)
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT.parent,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_verbs_stay_functions_after_their_subpackages_are_imported():
    """``climode.train``, ``climode.forecast`` and ``climode.verify`` are the user's functions even once
    the subpackages of those names (the trainer, the forecast command, verification) are imported."""
    code = textwrap.dedent("""
        import inspect
        import climode.forecast.__main__, climode.training.run, climode.verification.metrics
        import climode
        from climode.verification import metrics
        names = ("open_fields", "forecast", "verify", "train", "load_model", "get_model")
        print([n for n in names if not inspect.isfunction(getattr(climode, n))], callable(metrics.ssim))
        net = climode.get_model("vid-ode", channels=2, width=4)
        print(type(net).__name__, net.config.channels)
    """)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT.parent, env={"OMP_NUM_THREADS": "1"}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["[] True", "VidODE 2"]


def test_the_library_never_touches_the_pyplot_state_machine():
    """Figures are ``matplotlib.figure.Figure`` objects drawn and saved on their own canvas: importing
    pyplot or calling ``matplotlib.use`` would switch a notebook's inline backend off (plots after a
    climode call stopped showing)."""
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted(ROOT.rglob("*.py"))
        if re.search(r"matplotlib\.use\(|import matplotlib\.pyplot|from matplotlib import pyplot", path.read_text())
    ]
    assert offenders == []

"""The package's layering: the network imports alone, lower layers never import higher ones, no
module-level import cycle, the commands only in ``climode.cli`` (checked on the source, so a new import
that breaks it fails here)."""

import ast
import importlib
import inspect
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
    "climode.cli",
    "climode.forecasting",
    "climode.training",
    "climode.verification",
    "climode.protocols",
    "climode.maps",
    "climode.pipeline",
    "climode.outputs",
)
# the modules kept so that ``python -m climode.X`` runs a command: they call ``climode.cli.forward`` only
FORWARDERS = {
    "climode.__main__": "climode/__main__.py",
    "climode.train": "climode/train.py",
    "climode.evaluate": "climode/evaluate.py",
    "climode.prepare": "climode/prepare.py",
    "climode.forecast": "climode/forecast.py",
    "climode.video.__main__": "climode/video/__main__.py",
    "climode.data.synthetic.__main__": "climode/data/synthetic/__main__.py",
    "climode.data.cases": "climode/data/cases.py",
    "climode.video.synthetic": "climode/video/synthetic.py",
}
# the file-format layers: not even a function of theirs imports these
FORMATS = ("climode.io", "climode.geo")
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


@pytest.mark.slow
@pytest.mark.parametrize("lower", LOWER)
def test_lower_layers_import_nothing_from_higher_ones(lower):
    graph = _graph()
    bad = {
        m: sorted(d for d in deps if d.startswith(HIGHER) and not (m in FORWARDERS and d == "climode.cli"))
        for m, deps in graph.items()
        if m == lower or m.startswith(lower + ".")
    }
    assert {m: d for m, d in bad.items() if d} == {}


def _all_imports(module: str, path: Path) -> set[str]:
    """Every module ``module`` names in an import statement, at module level or in a function."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            names |= {target} | {f"{target}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
    return names


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_file_formats_import_no_higher_layer_even_inside_functions():
    bad = {
        m: sorted(n for n in _all_imports(m, p) if _under(n, HIGHER))
        for m, p in _modules().items()
        if _under(m, FORMATS)
    }
    assert {m: n for m, n in bad.items() if n} == {}


@pytest.mark.slow
def test_only_the_commands_and_their_forwarders_import_the_cli():
    bad = {
        m: sorted(n for n in _all_imports(m, p) if _under(n, ("climode.cli",)))
        for m, p in _modules().items()
        if not _under(m, ("climode.cli",)) and m not in FORWARDERS
    }
    assert {m: n for m, n in bad.items() if n} == {}


def _uses_the_command_line(tree: ast.AST) -> list[str]:
    """``argparse`` imports and ``sys.argv`` uses in ``tree``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            named = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            found += [f"line {node.lineno}: import argparse" for n in named if n and n.split(".")[0] == "argparse"]
        elif isinstance(node, ast.Attribute) and node.attr == "argv":
            found.append(f"line {node.lineno}: .argv")
    return found


def test_only_the_commands_read_the_command_line():
    """Options are parsed in ``climode.cli`` only: no other module imports argparse or reads
    ``sys.argv``."""
    bad = {
        m: found
        for m, p in _modules().items()
        if not _under(m, ("climode.cli",))
        if (found := _uses_the_command_line(ast.parse(p.read_text())))
    }
    assert bad == {}


def _forwarded(path: Path) -> list[str]:
    """The commands a forwarding module's ``forward(__name__, COMMAND)`` calls run."""
    return [
        node.args[1].value
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "forward"
    ]


def test_the_forwarders_only_forward():
    """Each module kept for ``python -m climode.X`` hands its arguments to ``climode.cli.forward``
    (``climode.__main__`` to ``climode.cli.main``), and, imported rather than run, refuses."""
    from climode.cli import COMMANDS

    root = ROOT.parent
    for module, file in FORWARDERS.items():
        if module == "climode.__main__":
            continue
        assert [c for c in _forwarded(root / file) if c in COMMANDS] != [], module
        if module in ("climode.data.cases", "climode.video.synthetic"):  # library modules: forward under a guard
            continue
        sys.modules.pop(module, None)
        with pytest.raises(ImportError, match="python -m"):
            importlib.import_module(module)


def test_the_verbs_are_functions():
    """``climode.train``, ``climode.forecast``, ``climode.prepare`` ... are the user's functions, also
    once the modules behind them are imported; the forwarding modules of those names refuse to load."""
    import climode
    import climode.forecasting
    import climode.training.run
    import climode.verification.metrics  # noqa: F401

    assert [n for n in climode.VERBS if not inspect.isfunction(getattr(climode, n))] == []


@pytest.mark.slow
def test_the_network_imports_and_runs_without_the_data_stack():
    """``import climode.model`` on a machine without xarray, dask, zarr, cftime, cartopy (or pandas,
    matplotlib, lightning): every model of the registry builds and forecasts, with gradients on (the
    activation checkpointing path, whose torch.utils.checkpoint probes for optional packages)."""
    code = textwrap.dedent(f"""
        import sys
        for name in {DATA_STACK!r}:
            sys.modules[name] = None  # as if not installed: importing it fails, find_spec finds nothing
        import torch
        from climode.model import MODELS, ModelConfig, build
        from climode.normalise import Normalised
        frames, times, query = torch.rand(1, 3, 3, 16, 16), torch.tensor([0.0, 1.0, 2.0]), torch.tensor([3.0])
        for name in MODELS:
            model = build(ModelConfig(architecture=name, width=4, n_in=3, frame_shape=[16, 16]))
            assert model(frames, times, query)["frames"].shape == (1, 1, 3, 16, 16), name
        print(sorted(m for m, mod in sys.modules.items() if m.split(".")[0] in {DATA_STACK!r} and mod is not None))
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

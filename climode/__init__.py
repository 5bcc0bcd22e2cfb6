"""climode: continuous-time forecasts of gridded fields with Vid-ODE.

The user's verbs::

    ds = climode.open_fields("storm.nc")                      # files -> one Dataset
    out = climode.forecast(ds, "60,63,66")                    # any times, bundled model by default
    scores = climode.verify(out, climode.open_fields("truth.nc"))
    run = climode.train(config, "runs/mine")                  # -> the run's model file
    climode.prepare("cam5/*.nc", "tiles.zarr")                # fields -> tiles -> samples -> shards
    ckpt = climode.load_model(run)                            # weights and card, no code executed
    net = climode.get_model("vid-ode", channels=3)            # an untrained network by name

and on a Dataset: ``ds.climode.forecast(times)``, ``ds.climode.tiles(...)``,
``forecast.climode.verify(truth)`` (``climode.accessor``).

The verbs are functions; the code behind them lives in subpackages of other names
(``climode.forecasting``, ``climode.training``, ``climode.verification``, ``climode.pipeline``) and
the commands in ``climode.cli``. Names are imported on first use, so that ``import climode.model``
(the network alone) works without the data stack (xarray, dask, zarr, cftime) and never loads the
maps (cartopy).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types

from ._lazy import lazy_getattr
from ._version import __version__
from .errors import ClimodeError

VERBS = {
    "open_fields": ".io.fields",
    "forecast": ".forecasting",
    "verify": ".verification.truth",
    "train": ".training.run",
    "prepare": ".pipeline",
    "load_model": ".checkpoint",
    "get_model": ".model",
}
# public name -> the module that defines it
_HOMES = {
    **VERBS,
    "Checkpoint": ".checkpoint",
    "save_model": ".checkpoint",
    "ModelConfig": ".model",
    "write": ".outputs",
    "write_netcdf": ".io.write",
    "write_zarr": ".io.write",
}


__getattr__ = lazy_getattr(globals(), _HOMES)


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})


class _AccessorWithXarray(importlib.abc.MetaPathFinder):
    """Registers ``ds.climode`` (``climode.accessor``) once xarray is imported, by whoever imports it:
    ``import climode`` does not load xarray itself (the network alone never needs it, and a command's
    ``--help`` stays under a second)."""

    def find_spec(self, name, path=None, target=None):
        if name != "xarray":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            run = spec.loader.exec_module

            def exec_module(module: types.ModuleType) -> None:
                run(module)
                importlib.import_module(".accessor", __name__)

            spec.loader.exec_module = exec_module
        return spec


if sys.modules.get("xarray") is not None:  # None: imports of xarray are blocked
    from . import accessor  # noqa: F401
else:
    sys.meta_path.insert(0, _AccessorWithXarray())

__all__ = ["ClimodeError", "__version__", *sorted(_HOMES)]

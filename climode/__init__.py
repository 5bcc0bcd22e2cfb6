"""climode: continuous-time forecasts of gridded fields with Vid-ODE.

The names below are imported on first use, so that ``import climode.model`` (the network alone)
needs neither the data stack (xarray, dask, zarr, cftime) nor the maps (cartopy).
"""

from __future__ import annotations

import importlib

from ._version import __version__
from .errors import ClimodeError

# public name -> the module that defines it
_HOMES = {
    "Checkpoint": ".checkpoint",
    "load_model": ".checkpoint",
    "save_model": ".checkpoint",
    "open_fields": ".data.fields",
    "forecast": ".forecasting",
    "ModelConfig": ".model",
    "SolverConfig": ".model",
    "VidODE": ".model",
    "warp": ".model",
    "write_netcdf": ".output",
    "write_zarr": ".output",
}


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'climode' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})


__all__ = ["ClimodeError", "__version__", *sorted(_HOMES)]

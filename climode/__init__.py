"""climode: continuous-time forecasts of gridded fields with Vid-ODE."""
__version__ = "0.1.0"

from .checkpoint import Checkpoint, load_model, save_model  # noqa: E402
from .data.fields import open_fields  # noqa: E402
from .errors import ClimodeError  # noqa: E402
from .forecast import forecast  # noqa: E402
from .model import ModelConfig, SolverConfig, VidODE, warp  # noqa: E402
from .output import write_netcdf, write_zarr  # noqa: E402

__all__ = ["Checkpoint", "ClimodeError", "ModelConfig", "SolverConfig", "VidODE", "forecast", "load_model",
           "open_fields", "save_model", "warp", "write_netcdf", "write_zarr"]

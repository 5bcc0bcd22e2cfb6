"""The Vid-ODE model: encoder, ODEs, decoder, warping, discriminators."""
from .discriminator import PatchDiscriminator
from .odefunc import SolverConfig
from .vidode import ModelConfig, VidODE, check_times
from .warp import warp

__all__ = ["ModelConfig", "PatchDiscriminator", "SolverConfig", "VidODE", "check_times", "warp"]

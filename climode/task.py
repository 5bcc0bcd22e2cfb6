"""The Lightning task that trains Vid-ODE: generator, the two LSGAN discriminators, and their losses."""
from __future__ import annotations

import sys

import lightning as L
import torch

from .baselines import persistence
from .config import Config
from .losses import lsgan_discriminator, lsgan_generator, masked_l1, masked_mse, previous_truth, sequence
from .model.discriminator import PatchDiscriminator
from .model.vidode import VidODE


class ForecastTask(L.LightningModule):
    """Vid-ODE training with manual optimisation: per batch, one discriminator update on the
    detached forecast, then one generator update on
    L1 + lambda_diff * L_diff + lambda_img * L_img + lambda_seq * L_seq.

    Extrapolation uses the paper's Eq. 4 (inputs then forecasts against inputs then truth);
    a batch with targets inside the input range is interpolation and uses Eq. 8 (the true
    sequence with one frame replaced by its forecast). ``metadata`` (variables,
    normalisation, time units) travels into every checkpoint.
    """

    def __init__(self, config: Config, metadata: dict):
        super().__init__()
        self.automatic_optimization = False
        self.config, self.metadata = config, metadata
        self.model = VidODE(config.model)
        train = config.train
        if train.adversarial:
            c, frames = config.model.channels, config.data.n_in + config.data.n_out
            self.d_img = PatchDiscriminator(c, train.disc_width)
            self.d_seq = PatchDiscriminator(c * frames, train.disc_width)

    def on_fit_start(self) -> None:
        if self.trainer.is_global_zero and torch.distributed.is_available() and torch.distributed.is_initialized():
            print(f"data-parallel training: {self.trainer.world_size} processes, "
                  f"{torch.distributed.get_backend()} backend", file=sys.stderr, flush=True)

    def _generator_losses(self, batch: dict, out: dict) -> dict[str, torch.Tensor]:
        target = batch["frames_out"]
        truth_before = previous_truth(target, out["anchor"], out["previous"])
        return {"recon": masked_l1(out["frames"], target), "diff": masked_l1(out["diff"], target - truth_before)}

    def _fake_sequence_targets(self, batch: dict, generated: torch.Tensor) -> torch.Tensor:
        if batch["times_out"][0] > batch["times_in"][-1]:
            return generated  # extrapolation, Eq. 4
        j = int(torch.randint(generated.shape[1], (1,)))  # interpolation, Eq. 8
        mixed = batch["frames_out"].clone()
        mixed[:, j] = generated[:, j]
        return mixed

    def training_step(self, batch: dict, batch_idx: int) -> None:
        train = self.config.train
        out = self.model(batch["frames_in"], batch["times_in"], batch["times_out"])
        losses = self._generator_losses(batch, out)
        g_loss = losses["recon"] + train.lambda_diff * losses["diff"]
        optimizers = self.optimizers()
        if train.adversarial:
            opt_g, opt_d = optimizers
            fake_img = out["frames"].flatten(0, 1)
            real_img = torch.nan_to_num(batch["frames_out"]).flatten(0, 1)
            seq = lambda frames: sequence(batch["frames_in"], batch["times_in"], frames, batch["times_out"],
                                          batch["present_in"], batch["present_out"])
            real_seq, fake_seq = seq(batch["frames_out"]), seq(self._fake_sequence_targets(batch, out["frames"]))
            d_loss = lsgan_discriminator(self.d_img(real_img), self.d_img(fake_img.detach())) + lsgan_discriminator(
                self.d_seq(real_seq), self.d_seq(fake_seq.detach()))
            opt_d.zero_grad()
            self.manual_backward(d_loss)
            opt_d.step()
            losses["adv_img"] = lsgan_generator(self.d_img(fake_img))
            losses["adv_seq"] = lsgan_generator(self.d_seq(fake_seq))
            losses["d"] = d_loss.detach()
            g_loss = g_loss + train.lambda_img * losses["adv_img"] + train.lambda_seq * losses["adv_seq"]
        else:
            opt_g = optimizers
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        losses["loss"] = g_loss.detach()
        self.log_dict({f"train/{k}": v.detach() for k, v in losses.items()}, prog_bar=False, on_step=True,
                      batch_size=len(batch["frames_in"]))
        self.log("loss", losses["loss"], prog_bar=True, logger=False)
        if batch_idx + 1 == self.trainer.num_training_batches:  # x lr_decay after each full epoch
            schedulers = self.lr_schedulers()
            for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
                scheduler.step()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        out = self.model(batch["frames_in"], batch["times_in"], batch["times_out"])
        target = batch["frames_out"]
        last_frame = persistence(batch["frames_in"], batch["times_in"], batch["times_out"])
        self.log_dict({"val/mse": masked_mse(out["frames"], target),
                       "val/mse_persistence": masked_mse(last_frame, target)},
                      prog_bar=True, sync_dist=True, batch_size=len(target))

    def configure_optimizers(self):
        train = self.config.train
        groups = [self.model.parameters()]
        if train.adversarial:
            groups.append(list(self.d_img.parameters()) + list(self.d_seq.parameters()))
        optimizers = [torch.optim.Adamax(p, lr=train.lr) for p in groups]
        schedulers = [torch.optim.lr_scheduler.ExponentialLR(o, train.lr_decay) for o in optimizers]
        return optimizers, schedulers

    def checkpoint_metadata(self) -> dict:
        """What a checkpoint carries besides weights: variables, normalisation, time units, config."""
        return {**self.metadata, "config": self.config.to_dict(), "model": self.config.model.to_dict()}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["climode"] = self.checkpoint_metadata()

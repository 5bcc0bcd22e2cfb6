"""The Lightning task that trains a forecaster (Vid-ODE or a model compared with it): generator, the two
LSGAN discriminators, and their losses."""
from __future__ import annotations

import sys

import lightning as L
import torch

from .baselines import persistence
from .config import Config
from .data.samples import own_times, sub_batch
from .losses import lsgan_discriminator, lsgan_generator, masked_l1, masked_mse, previous_truth, sequence
from .model import build
from .model.discriminator import PatchDiscriminator


class ForecastTask(L.LightningModule):
    """Training with manual optimisation: per batch, one discriminator update on the
    detached forecast, then one generator update on
    L1 + lambda_diff * L_diff + lambda_img * L_img + lambda_seq * L_seq (Vid-ODE).

    Any model of ``climode.model.MODELS`` trains here: the L1 of its ``frames``; the difference
    loss where it composes frames from a difference image (``diff``); the variational models
    (those returning ``kl``) the MSE of their ``frames`` and reconstructed ``inputs`` plus
    lambda_kl * ``kl``.

    Extrapolation uses the paper's Eq. 4 (inputs then forecasts against inputs then truth);
    a batch with targets inside the input range is interpolation and uses Eq. 8 (the true
    sequence with one frame replaced by its forecast). ``metadata`` (variables,
    normalisation, time units) travels into every checkpoint.
    """

    def __init__(self, config: Config, metadata: dict):
        super().__init__()
        self.automatic_optimization = False
        self.config, self.metadata = config, metadata
        self.model = build(config.model)
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
        # the variational models' likelihood is Gaussian (their papers): an L1 left them at persistence
        reconstruction = masked_mse if "kl" in out else masked_l1
        losses = {"recon": reconstruction(out["frames"], target)}
        if "diff" in out:
            truth_before = previous_truth(target, out["anchor"], out["previous"])
            losses["diff"] = masked_l1(out["diff"], target - truth_before)
        if "inputs" in out:
            losses["inputs"] = reconstruction(out["inputs"], batch["frames_in"])
        if "kl" in out:
            losses["kl"] = out["kl"]
        return losses

    def _generator_loss(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        train = self.config.train
        weights = {"recon": 1.0, "diff": train.lambda_diff, "inputs": 1.0, "kl": train.lambda_kl}
        return sum(weights[name] * losses[name] for name in weights if name in losses)

    def _fake_sequence_targets(self, batch: dict, generated: torch.Tensor) -> torch.Tensor:
        if batch["times_out"][0] > batch["times_in"][-1]:
            return generated  # extrapolation, Eq. 4
        j = int(torch.randint(generated.shape[1], (1,)))  # interpolation, Eq. 8
        mixed = batch["frames_out"].clone()
        mixed[:, j] = generated[:, j]
        return mixed

    def _forecast(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Each group of samples forecast on its own times (``own_times``): the frames on the union
        query grid (NaN at other samples' times) and the generator's losses, weighted by group size."""
        frames = batch["frames_out"].new_full(batch["frames_out"].shape, float("nan"))
        losses: dict[str, torch.Tensor] = {}
        for rows, inputs, queries in own_times(batch["present_in"], batch["present_out"]):
            part = sub_batch(batch, rows, inputs, queries)
            out = self.model(part["frames_in"], part["times_in"], part["times_out"])
            frames[rows[:, None], queries[None]] = out["frames"]
            for name, value in self._generator_losses(part, out).items():
                losses[name] = losses.get(name, 0) + value * len(rows) / len(frames)
        return frames, losses

    def training_step(self, batch: dict, batch_idx: int) -> None:
        train = self.config.train
        generated, losses = self._forecast(batch)
        g_loss = self._generator_loss(losses)
        optimizers = self.optimizers()
        if train.adversarial:
            opt_g, opt_d = optimizers
            own = torch.isfinite(generated).flatten(2).any(2)  # (B, K): each sample's own query times
            fake_img = generated[own]
            real_img = torch.nan_to_num(batch["frames_out"][own])
            seq = lambda frames: sequence(batch["frames_in"], batch["times_in"], frames, batch["times_out"],
                                          batch["present_in"], batch["present_out"])
            real_seq, fake_seq = seq(batch["frames_out"]), seq(self._fake_sequence_targets(batch, generated))
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
        generated, _ = self._forecast(batch)
        target = batch["frames_out"]
        last_frame = persistence(batch["frames_in"], batch["times_in"], batch["times_out"])
        self.log_dict({"val/mse": masked_mse(generated, target),
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

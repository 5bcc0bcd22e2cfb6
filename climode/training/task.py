"""The Lightning task that trains a forecaster (Vid-ODE or a model compared with it): generator, the two
LSGAN discriminators, their losses, the weights' moving average and the learning-rate schedule."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import platform

import lightning as L
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch.nn.modules.module import register_module_forward_pre_hook
from torch.optim.swa_utils import AveragedModel

from ..checkpoint import Card
from ..config import Config, TrainConfig
from ..data.samples import by_times
from ..model import build
from ..model.base import INTERPOLATED
from ..model.baselines import persistence
from ..model.compute import use_channels_last
from ..model.discriminator import PatchDiscriminator
from .losses import anomaly_l1, diff_targets, lsgan_discriminator, lsgan_generator, masked_l1, masked_mse, sequence

log = logging.getLogger(__name__)


def steps_per_update(train: TrainConfig) -> int:
    """Lightning's steps per generator update: it counts every optimizer's step, the discriminators'
    too in adversarial training."""
    return 2 if train.adversarial else 1


def _hardware(device: torch.device) -> str:
    """The machine a run trains on, as a checkpoint card says it: the GPU's name, or CPU and threads."""
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}"
    return f"CPU ({platform.machine() or 'unknown'}), {torch.get_num_threads()} torch thread(s), no GPU"


@contextlib.contextmanager
def _frozen(*modules: torch.nn.Module):
    """Within: the modules' parameters need no gradient, so a backward through what they computed
    reaches their inputs only (no weight gradients computed)."""
    flags = [(p, p.requires_grad) for m in modules for p in m.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


class Schedule:
    """The learning-rate factor after ``step`` generator updates: a linear warm-up over ``warmup``
    updates, then a cosine from 1 down to ``floor`` at update ``total`` ("cosine"), or the paper's
    x ``decay`` after every full epoch of ``per_epoch`` updates ("epoch-decay")."""

    def __init__(self, kind: str, warmup: int, total: int, floor: float, decay: float, per_epoch: int):
        self.kind, self.warmup, self.total, self.floor = kind, warmup, total, floor
        self.decay, self.per_epoch = decay, max(1, per_epoch)

    def __call__(self, step: int) -> float:
        warm = min(1.0, (step + 1) / self.warmup) if self.warmup > 0 else 1.0
        if self.kind == "epoch-decay":
            return warm * self.decay ** (step // self.per_epoch)
        progress = min(1.0, max(0, step - self.warmup) / max(1, self.total - self.warmup))
        return warm * (self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def moving_average(decay: float):
    """``AveragedModel``'s update with decay min(decay, (1 + n) / (10 + n)) after n updates, so that a
    short run's average is not stuck near the initial weights."""

    def update(average: torch.Tensor, current: torch.Tensor, n: torch.Tensor | int) -> torch.Tensor:
        d = min(decay, (1 + float(n)) / (10 + float(n)))
        return d * average + (1 - d) * current

    return update


class ForecastTask(L.LightningModule):
    """Training with manual optimisation: per batch, one discriminator update on the detached forecast,
    then one generator update on L1 + lambda_diff * L_diff + lambda_img * L_img + lambda_seq * L_seq
    (Vid-ODE) + lambda_core * L_core (the anomaly-weighted L1, ``losses.anomaly_l1``), gradients
    clipped to ``train.clip`` (L2 norm), then the moving average of the weights
    (``train.ema``) follows. Validation and the exported models use those averaged weights.

    Any model of ``climode.model.MODELS`` trains here: the L1 of its ``frames``; the difference loss
    where it extrapolates through a difference image (``diff`` at queries whose ``kind`` is
    EXTRAPOLATED, trained towards the true change from the frame it is composed from); the
    variational models (those returning ``kl``) the MSE of their ``frames`` and reconstructed
    ``inputs`` plus lambda_kl * ``kl``; a model's own terms (``losses``: name -> scalar, already
    weighted as its paper weights them, e.g. a cycle-consistency loss) are added as they are. Models
    taking each sample's own times get the whole batch; the others one group of samples sharing their
    times at a time.

    The sequence discriminator sees each sample's observed inputs and queries in time order; with the
    real frames at every query but one (the supplement's Eq. 8) for samples whose queries all lie
    between observations, else with the forecasts at every query (Eq. 4). ``card`` (variables,
    normalisation, time units, grid) travels into every checkpoint with the run's config.
    """

    def __init__(self, config: Config, card: Card):
        super().__init__()
        self.automatic_optimization = False
        self.config, self.card = config, card
        self.model = build(config.model)
        train = config.train
        self.ema = None
        if train.ema > 0:
            self.ema = AveragedModel(self.model, avg_fn=moving_average(train.ema), use_buffers=True)
            self.ema.requires_grad_(False)
        if train.adversarial:
            c = config.model.channels
            self.d_img = PatchDiscriminator(c, train.disc_width)
            self.d_seq = PatchDiscriminator(c * self.sequence_frames, train.disc_width)
            if config.model.channels_last:
                for disc in (self.d_img, self.d_seq):
                    use_channels_last(disc)
        self.shared_times = not getattr(self.model, "per_sample_times", False)
        self.first_update = True  # of this fit: its metrics are written at once (``_log_first_update``)

    @property
    def sequence_frames(self) -> int:
        """The most frames a sample holds: its inputs and targets, and with ``data.continuous`` the
        target inside each gap between inputs (the sequence discriminator's width)."""
        data = self.config.data
        return data.n_in + data.n_out + (data.n_in - 1 if data.continuous else 0)

    def averaged(self) -> torch.nn.Module:
        """The weights validation and the exported models use: the moving average, else the model."""
        return self.ema.module if self.ema is not None else self.model

    def on_fit_start(self) -> None:
        if self.trainer.is_global_zero and torch.distributed.is_available() and torch.distributed.is_initialized():
            log.info(
                "data-parallel training: %d processes, %s backend",
                self.trainer.world_size,
                torch.distributed.get_backend(),
            )

    def generator_losses(self, batch: dict, out: dict) -> dict[str, torch.Tensor]:
        """The generator's loss terms for one forecast ``out`` of ``batch`` (unweighted)."""
        target = batch["frames_out"]
        # the variational models' likelihood is Gaussian (their papers): an L1 left them at persistence
        reconstruction = masked_mse if "kl" in out else masked_l1
        losses = {"recon": reconstruction(out["frames"], target)}
        if self.config.train.lambda_core > 0:
            losses["core"] = anomaly_l1(out["frames"], target)
        if "diff" in out and "kind" in out:
            losses["diff"] = masked_l1(out["diff"], diff_targets(batch, out))
        if "inputs" in out:
            losses["inputs"] = reconstruction(out["inputs"], batch["frames_in"])
        if "kl" in out:
            losses["kl"] = out["kl"]
        for name, value in out.get("losses", {}).items():  # a model's own terms, weighted by the model
            losses[f"model_{name}"] = value
        return losses

    def generator_loss(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        train = self.config.train
        weights = {
            "recon": 1.0,
            "diff": train.lambda_diff,
            "inputs": 1.0,
            "kl": train.lambda_kl,
            "core": train.lambda_core,
        }
        own = [value for name, value in losses.items() if name.startswith("model_")]
        return sum(weights[name] * losses[name] for name in weights if name in losses) + sum(own)

    def forecast(self, batch: dict, model: torch.nn.Module | None = None) -> tuple[torch.Tensor, dict, torch.Tensor]:
        """The forecast frames (B, K, C, H, W) at each sample's queries (NaN where none), the generator's
        losses (averaged over samples) and ``kind`` (B, K) (-1 where the model does not say)."""
        model = model or self.model
        frames = batch["frames_out"].new_full(batch["frames_out"].shape, float("nan"))
        kind = torch.full(batch["times_out"].shape, -1, dtype=torch.long, device=frames.device)
        losses: dict[str, torch.Tensor] = {}
        for rows, columns, part in by_times(batch, self.shared_times):
            with self._stoppable():
                out = model(part["frames_in"], part["times_in"], part["times_out"])
            frames[rows[:, None], columns[None]] = out["frames"].to(frames.dtype)
            if "kind" in out:
                kind[rows[:, None], columns[None]] = out["kind"]
            for name, value in self.generator_losses(part, out).items():
                losses[name] = losses.get(name, 0) + value * len(rows) / len(frames)
        return frames, losses, kind

    @contextlib.contextmanager
    def _stoppable(self):
        """While a forecast runs, every module call (each ODE solver step among them) first checks the
        flag Lightning's SIGTERM handler sets and raises SIGTERMException: a slow update (a long span,
        many solver steps) stops at once instead of after it ends, before any weight or optimiser
        state of that update has changed (the forecast comes first), so the last checkpoint is exact."""
        trainer = getattr(self, "_trainer", None)  # None outside a fit
        if trainer is None:
            yield
            return

        def check(module: torch.nn.Module, args: tuple) -> None:
            if trainer.received_sigterm:
                raise SIGTERMException

        handle = register_module_forward_pre_hook(check)
        try:
            yield
        finally:
            handle.remove()

    def _log_first_update(self, metrics: dict[str, torch.Tensor], update: int) -> None:
        """Write the first update's metrics of this fit to the loggers at once: Lightning writes a row every
        ``log_every_n_steps`` updates, the first after that many (a short or stopped run showed none)."""
        first, self.first_update = self.first_update, False
        if not first or (update + 1) % self.trainer.log_every_n_steps == 0:  # Lightning writes this one
            return
        row = {name: float(value) for name, value in metrics.items()} | {"epoch": self.current_epoch}
        for logger in self.loggers:
            logger.log_metrics(row, step=update)
            logger.save()

    def _fake_sequence(self, batch: dict, generated: torch.Tensor, kind: torch.Tensor) -> torch.Tensor:
        """The generated frames where the sequence discriminator sees them (class docstring)."""
        asked = torch.isfinite(batch["times_out"])
        between = ((kind == INTERPOLATED) | ~asked).all(1)
        fake = generated.clone()
        for b in torch.nonzero(between).flatten().tolist():
            columns = torch.nonzero(asked[b]).flatten()
            keep = columns[torch.randint(len(columns), (1,), device=columns.device)]
            real = batch["frames_out"][b].clone()
            real[keep] = generated[b, keep]
            fake[b] = real
        return fake

    def _ode_evaluations(self) -> dict[str, float]:
        funcs = getattr(self.model, "ode_functions", dict)()
        return {f"nfe_{name}": float(func.nfe) for name, func in funcs.items()}

    def _reset_ode_evaluations(self) -> None:
        for func in getattr(self.model, "ode_functions", dict)().values():
            func.nfe = 0

    def training_step(self, batch: dict, batch_idx: int) -> None:  # noqa: ARG002
        train = self.config.train
        update = self.global_step // steps_per_update(train)  # Lightning's logging step
        self._reset_ode_evaluations()
        generated, losses, kind = self.forecast(batch)
        losses.update(self._ode_evaluations())
        g_loss = self.generator_loss(losses)
        optimizers = self.optimizers()
        if train.adversarial:
            opt_g, opt_d = optimizers
            asked = torch.isfinite(generated).flatten(2).any(2)
            fake_img = generated[asked]
            real_img = torch.nan_to_num(batch["frames_out"][asked])
            seq = lambda frames: sequence(
                batch["frames_in"],
                batch["times_in"],
                frames,
                batch["times_out"],
                self.sequence_frames,
            )
            real_seq, fake_seq = seq(batch["frames_out"]), seq(self._fake_sequence(batch, generated, kind))
            d_loss = lsgan_discriminator(self.d_img(real_img), self.d_img(fake_img.detach())) + lsgan_discriminator(
                self.d_seq(real_seq), self.d_seq(fake_seq.detach())
            )
            opt_d.zero_grad()
            self.manual_backward(d_loss)
            if train.clip > 0:
                self.clip_gradients(opt_d, gradient_clip_val=train.clip, gradient_clip_algorithm="norm")
            opt_d.step()
            with _frozen(self.d_img, self.d_seq):  # their gradients from the generator's loss were never used
                losses["adv_img"] = lsgan_generator(self.d_img(fake_img))
                losses["adv_seq"] = lsgan_generator(self.d_seq(fake_seq))
            losses["d"] = d_loss.detach()
            g_loss = g_loss + train.lambda_img * losses["adv_img"] + train.lambda_seq * losses["adv_seq"]
        else:
            opt_g = optimizers
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        if train.clip > 0:
            self.clip_gradients(opt_g, gradient_clip_val=train.clip, gradient_clip_algorithm="norm")
        opt_g.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        losses["loss"] = g_loss.detach()
        losses["lr"] = opt_g.param_groups[0]["lr"]
        metrics = {f"train/{k}": torch.as_tensor(v).detach().float() for k, v in losses.items()}
        self.log_dict(metrics, prog_bar=False, on_step=True, batch_size=len(batch["frames_in"]))
        self._log_first_update(metrics, update)
        self.log("loss", losses["loss"], prog_bar=True, logger=False)
        schedulers = self.lr_schedulers()
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            scheduler.step()  # after every generator update (``Schedule``)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        generated, _, _ = self.forecast(batch, self.averaged())
        target = batch["frames_out"]
        asked = torch.isfinite(batch["times_out"])
        last_frame = persistence(batch["frames_in"], batch["times_in"][0], batch["times_out"][0])
        self.log_dict(
            {
                "val/mse": masked_mse(generated, target),
                "val/mse_persistence": masked_mse(
                    last_frame[:, : target.shape[1]],
                    torch.where(asked.view(*asked.shape, 1, 1, 1), target, float("nan")),
                ),
            },
            prog_bar=True,
            sync_dist=True,
            batch_size=len(target),
        )

    def configure_optimizers(self):
        train = self.config.train
        groups = [self.model.parameters()]
        if train.adversarial:
            groups.append(list(self.d_img.parameters()) + list(self.d_seq.parameters()))
        optimizers = [torch.optim.Adamax(p, lr=train.lr) for p in groups]
        per_epoch = int(self.trainer.num_training_batches) if math.isfinite(self.trainer.num_training_batches) else 1
        total = train.max_steps if train.max_steps > 0 else train.max_epochs * per_epoch
        factor = Schedule(train.schedule, train.warmup_steps, total, train.min_lr / train.lr, train.lr_decay, per_epoch)
        # a plain function, which LambdaLR does not save: a resumed run follows its own --max-steps
        return optimizers, [torch.optim.lr_scheduler.LambdaLR(o, lambda step: factor(step)) for o in optimizers]

    def checkpoint_card(self) -> Card:
        """The card of every checkpoint of this run: the data's, with the run's data and train config and
        what the weights were trained on (dataset, updates so far, hardware)."""
        config = {k: v for k, v in self.config.to_dict().items() if k != "model"}
        trainer = getattr(self, "_trainer", None)  # None before Lightning attaches one
        data = self.config.data
        training = {
            "data": f"{data.name} ({data.path})" if data.path else data.name,
            "updates": int(trainer.global_step) // steps_per_update(self.config.train) if trainer is not None else 0,
            "hardware": _hardware(next(self.model.parameters(), torch.zeros(())).device),
        }
        return dataclasses.replace(self.card, config=config, training=training)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["climode"] = self.checkpoint_card().header(self.model)

"""Train Vid-ODE or a model compared with it: ``python -m climode.train [--model NAME] --config CONFIG --out DIR``.

Checkpoints go to DIR/checkpoints (``last.ckpt`` is what ``--resume`` continues from,
with optimiser, schedule, moving-average and discriminator state), metrics to DIR/logs/metrics.csv,
the run's config to DIR/run.yaml, the model of the best validation MSE to DIR/best.safetensors and
the final model to DIR/model.safetensors, whose path is the last line printed (both with the
moving-average weights). ``--init-from MODEL`` starts from a saved model's weights (fine-tuning),
with its architecture and normalisation. ``--model`` picks the architecture (default: the config's,
vid-ode); the baselines without parameters (persistence, linear, advection) are written out at
once, so that ``python -m climode.evaluate --checkpoint`` scores them like any model.
"""

from .._lazy import lazy_getattr

__getattr__ = lazy_getattr(globals(), {"train": ".run"})  # the command's --help loads no trainer

"""``climode train`` (``python -m climode.train``): the command over ``climode.training.train``."""

from __future__ import annotations

import argparse

from ..configs import builtin_configs
from ..errors import cli
from ..training import __doc__ as DOC
from .options import add_input_options


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m climode.train", description=DOC, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", help=f"YAML file or built-in config ({', '.join(builtin_configs())})")
    p.add_argument(
        "--model",
        help="the model to train, a name of climode.model.MODELS (default: the config's, vid-ode): vid-ode, "
        "ode-conv, ode-fc, a recurrent or latent model, or a baseline; another name is refused with the list",
    )
    p.add_argument(
        "--dataset",
        help="dataset name (overrides the config): bouncing-ball, scenes (procedural video), clips, cam5, "
        "gridded or a video layout (kth, mgif, penn, folder); another name is refused with the list",
    )
    p.add_argument(
        "--data",
        "--root",
        dest="data",
        help="data for file-backed datasets (clips .npz, cam5 shards, gridded fields; the root folder of kth, "
        "mgif, penn or folder videos)",
    )
    add_input_options(p, whose="the gridded files of --data", role="gridded: ", calendar=False)
    p.add_argument(
        "--train-times",
        help="gridded: train only on this span, START:END dates ('2000-01-01:2000-06-30'); the test "
        "samples come after it (and after --val-times)",
    )
    p.add_argument("--val-times", help="gridded: validate on this span, START:END dates, disjoint from --train-times")
    p.add_argument("--out", default="runs/vidode", help="run directory (default: runs/vidode)")
    p.add_argument("--max-steps", type=int, help="stop after this many generator updates (batches)")
    p.add_argument("--max-epochs", type=int, help="stop after this many epochs")
    p.add_argument(
        "--resume",
        nargs="?",
        const="last",
        metavar="CKPT",
        help="continue the run in --out from its last checkpoint (or from CKPT)",
    )
    p.add_argument(
        "--init-from",
        metavar="MODEL",
        help="start from the weights of a saved model (.safetensors or .ckpt; the bundled one: 'bundled'), "
        "with its architecture and normalisation",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument("--devices", type=int, help="processes/GPUs for data-parallel training")
    p.add_argument("--accelerator", help="cpu, gpu or auto")
    p.add_argument("--checkpoint-every", type=int, help="save a checkpoint every N generator updates")
    p.add_argument(
        "--logger",
        help="csv (logs/metrics.csv, default) or tensorboard (also logs/tensorboard; needs the tensorboard extra: "
        'pip install -e ".[tensorboard]")',
    )
    return p


@cli
def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    from ..data import DATASETS  # the stack loads after the options are read
    from ..model import MODELS
    from ..training.run import train

    if args.model is not None:
        MODELS.get_method(args.model)
    if args.dataset is not None:
        DATASETS.get_method(args.dataset)
    path = train(
        args.config,
        args.out,
        model=args.model,
        dataset=args.dataset,
        data=args.data,
        variables=args.vars,
        time_in_hours=args.time_in_hours,
        reference_time=args.reference_time,
        train_times=args.train_times,
        val_times=args.val_times,
        max_steps=args.max_steps,
        max_epochs=args.max_epochs,
        resume=args.resume,
        init_from=args.init_from,
        overwrite=args.overwrite,
        devices=args.devices,
        accelerator=args.accelerator,
        checkpoint_every=args.checkpoint_every,
        logger=args.logger,
    )
    if path is not None:
        print(path, flush=True)

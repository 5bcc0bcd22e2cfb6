"""The skill a change of Vid-ODE's settings costs: the cam5-irregular protocol (cpu-small preset)
with the strongest simple baseline and Vid-ODE under several model settings, each trained on the
same data, budget and seeds, and scored on the same test storms with paired 95 % intervals over
storms (``climode.protocols``; the last entry is the one compared with the others).

    .venv/bin/python benchmarks/settings_skill.py --out runs/decoder-skill [--seeds 0,1,2]
        [--entry 'LABEL={key: value, ...}' ...]

Each ``--entry`` is a Vid-ODE row with those model settings over the protocol's own (rk4 step 1 for
both ODEs, width 16, 300 updates); the default entries are the Conv-Decoders before issue 32
(``decoder: paper``) and today's (no change). Runs already in DIR with the same label and settings
are reused. Results: DIR/results.md and DIR/scores.csv, as any protocol writes them.
"""

from __future__ import annotations

import argparse
import logging

import yaml

from climode.protocols import run
from climode.protocols.spec import PROTOCOLS, Entry, Protocol


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--entry", action="append", metavar="'LABEL={key: value}'")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    entries = [item.split("=", 1) for item in args.entry or ["Vid-ODE (decoder paper)={decoder: paper}", "Vid-ODE={}"]]
    base = PROTOCOLS.get_method("cam5-irregular")
    PROTOCOLS["cam5-defaults"] = Protocol(
        f"{base.title}: Vid-ODE's defaults against the earlier ones",
        base.data,
        (Entry("Advection", "advection"), *(Entry(name, "vid-ode", yaml.safe_load(cfg)) for name, cfg in entries)),
    )
    for path in run("cam5-defaults", "cpu-small", args.out, seeds=[int(s) for s in args.seeds.split(",")]):
        print(path)


if __name__ == "__main__":
    main()

"""A protocol's results as files: ``scores.csv`` (long form: the mean of one score of one model's
run at one lead time), ``cases.csv`` (every score of every test case), ``results.md`` (tables:
means over seeds, 95 % bootstrap intervals over storms, the subject against every other entry,
the spread over seeds) and plots of error against lead time and sampling rate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..io.atomic import replacing
from ..verification.intervals import bootstrap

# score -> (column title, scale applied to the stored value, format)
COLUMNS = {
    "mse": ("MSE x1e-3", 1e3, "{:.3f}"),
    "psnr": ("PSNR dB", 1.0, "{:.2f}"),
    "ssim": ("SSIM", 1.0, "{:.3f}"),
    "lpips": ("LPIPS", 1.0, "{:.3f}"),
    "rmse_U850": ("RMSE U850 m/s", 1.0, "{:.2f}"),
    "rmse_V850": ("RMSE V850 m/s", 1.0, "{:.2f}"),
    "rmse_PSL": ("RMSE PSL hPa", 0.01, "{:.2f}"),
    "track_km": ("track km", 1.0, "{:.0f}"),
    "psl_min_abs_hpa": ("|dPSLmin| hPa", 1.0, "{:.2f}"),
    "wind_max_abs_ms": ("|dVmax| m/s", 1.0, "{:.2f}"),
}
IMAGE_CONVENTIONS = (
    "MSE: mean over each frame's cells of fields in [0, 1] (storms: min-max scaled with the "
    "training split's range), x1e-3 (the paper's convention); PSNR: per frame, 10 log10(1 / MSE), "
    "then averaged (data range 1); PSNR pooled: 10 log10(1 / the mean MSE of all frames), the earlier "
    "public implementation's convention (below the mean of per-frame PSNR where errors are uneven); "
    "SSIM: Gaussian 11 px, sigma 1.5, per channel, averaged; LPIPS: "
)
LPIPS_NOTES = {
    True: "AlexNet v0.1 (Zhang et al. 2018) with the weights given to --lpips-weights.",
    False: "n/a (its backbone weights cannot be had here; --lpips-weights gives them).",
}
STORM_CONVENTIONS = (
    "RMSE in physical units, cos-latitude weighted; track error: great-circle km between the "
    "forecast's and the truth's PSL-minimum centres; |dPSLmin|, |dVmax|: absolute errors of minimum "
    "PSL and maximum 850 hPa wind within 300 km of the centre."
)


# scores shown per lead time with intervals; the subject is compared with every other entry on them
LEAD_SCORES = ("mse", "rmse_PSL", "track_km", "wind_max_abs_ms")
IMAGE_LEAD_SCORES = ("mse", "psnr")  # the same for data without storms


def long_table(results: list[dict]) -> pd.DataFrame:
    """Rows of ``{"setting", "model", "seed", "scores"}`` (scores as ``climode.verification.scoring.score``
    returns; seed None for a parameter-free model) -> a DataFrame with columns setting, model,
    seed, lead, samples, score, value (the mean over the run's samples)."""
    rows = []
    for r in results:
        s = r["scores"]
        for score, values in next(iter(s["methods"].values())).items():
            for lead, n, value in zip(s["lead_times"], s["samples"], values):
                rows.append(
                    {
                        "setting": r["setting"],
                        "model": r["model"],
                        "seed": r.get("seed"),
                        "lead": lead,
                        "samples": n,
                        "score": score,
                        "value": value,
                    }
                )
    return pd.DataFrame(rows)


def case_table(results: list[dict]) -> pd.DataFrame:
    """Every kept case score of ``results`` (each ``scores`` with ``cases``): columns setting,
    model, seed, sample, storm, lead, score, value."""
    parts = [
        r["scores"]["cases"].drop(columns="method").assign(setting=r["setting"], model=r["model"], seed=r.get("seed"))
        for r in results
        if "cases" in r["scores"]
    ]
    columns = ["setting", "model", "seed", "sample", "storm", "lead", "score", "value"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


def seed_means(cases: pd.DataFrame) -> pd.DataFrame:
    """Each case's score averaged over the training seeds: one row per (setting, model, sample,
    storm, lead, score), so that an interval over storms is not narrowed by counting seeds as cases."""
    keys = ["setting", "model", "sample", "storm", "lead", "score"]
    return cases.groupby(keys, sort=False)["value"].mean().reset_index()


def intervals(cases: pd.DataFrame, score: str, cluster: str, lead_units: str = "h") -> str:
    """Markdown: ``score`` per model and lead time, mean over seeds with a 95 % bootstrap interval
    that resamples storms (``cases`` as ``seed_means`` returns, one setting)."""
    part = cases[cases["score"] == score]
    if part.empty:
        return ""
    b = bootstrap(part, "value", ["model", "lead"], cluster="storm").set_index(["model", "lead"])
    order = [m for m in dict.fromkeys(part["model"])]
    leads = sorted(part["lead"].unique())
    out = pd.DataFrame({"model": order})
    for lead in leads:
        out[_lead(lead, lead_units)] = [_interval(b, (m, lead), score) for m in order]
    n = int(b["n_clusters"].max())
    return f"{COLUMNS[score][0]} per lead time, mean [95 % interval over {n} {cluster}s]:\n\n{_markdown(out)}\n"


def _interval(b: pd.DataFrame, key: tuple, score: str) -> str:
    if key not in b.index:
        return "n/a"
    row = b.loc[key]
    return f"{_cell(row['mean'], score)} [{_cell(row['lo'], score)}, {_cell(row['hi'], score)}]"


def comparison(cases: pd.DataFrame, subject: str, score: str, cluster: str, lead_units: str = "h") -> str:
    """Markdown: ``subject`` minus every other model in ``score`` per lead time, on the same cases
    (paired), with a 95 % bootstrap interval over storms; ``*`` where the interval excludes 0, the
    only place a ranking is claimed."""
    wide = cases[cases["score"] == score].pivot_table(
        index=["sample", "storm", "lead"], columns="model", values="value"
    )
    if subject not in wide.columns:
        return ""
    others = [m for m in dict.fromkeys(cases["model"]) if m != subject and m in wide.columns]
    diffs = pd.concat([(wide[subject] - wide[m]).rename("value").reset_index().assign(model=m) for m in others])
    b = bootstrap(diffs, "value", ["model", "lead"], cluster="storm").set_index(["model", "lead"])
    out = pd.DataFrame({f"{subject} minus": others})
    for lead in sorted(wide.index.get_level_values("lead").unique()):
        out[_lead(lead, lead_units)] = [
            _interval(b, (m, lead), score) + (" *" if _apart(b, (m, lead)) else "") for m in others
        ]
    n = int(b["n_clusters"].max())
    return (
        f"{subject} minus each model in {COLUMNS[score][0]}, per lead time, on the same cases: mean "
        f"[95 % interval over {n} {cluster}s]; * where the interval excludes 0 (negative: {subject} is lower):"
        f"\n\n{_markdown(out)}\n"
    )


def _lead(lead: float, units: str) -> str:
    return f"{lead:g} {units.removesuffix('s') if lead == 1 else units}"


def _apart(b: pd.DataFrame, key: tuple) -> bool:
    return key in b.index and (b.loc[key, "hi"] < 0 or b.loc[key, "lo"] > 0)


def seed_spread(table: pd.DataFrame) -> str:
    """Markdown: each learned model's mean MSE x1e-3 over lead times (and settings), one column per
    training seed."""
    mse = table[(table["score"] == "mse") & table["seed"].notna()]
    if mse.empty:
        return ""
    wide = mse.groupby(["model", "seed"], sort=False)["value"].mean().unstack()
    wide = wide.loc[[m for m in dict.fromkeys(mse["model"])]]
    out = pd.DataFrame({"model": wide.index})
    for seed in wide.columns:
        out[f"seed {int(seed)}"] = [_cell(v, "mse") for v in wide[seed]]
    over = "lead times and settings" if mse["setting"].nunique() > 1 else "lead times"
    return f"Mean MSE x1e-3 over {over}, by training seed:\n\n{_markdown(out)}\n"


def _cell(value: float, score: str) -> str:
    title, scale, fmt = COLUMNS.get(score, (score, 1.0, "{:.4g}"))
    return "n/a" if not np.isfinite(value) else fmt.format(value * scale)


def _markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns) + "\n"
    return header + "\n".join("| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False))


def rate_table(table: pd.DataFrame) -> str:
    """Markdown: the mean MSE x1e-3 over lead times, a row per model and a column per setting (rate)."""
    mse = table[table["score"] == "mse"].groupby(["model", "setting"], sort=False)["value"].mean()
    wide = mse.unstack()[list(dict.fromkeys(table["setting"]))].loc[list(dict.fromkeys(table["model"]))]
    out = pd.DataFrame({"model": wide.index})
    for setting in wide.columns:
        out[setting] = [_cell(v, "mse") for v in wide[setting]]
    return f"Mean MSE x1e-3 over lead times, by the share of input frames observed:\n\n{_markdown(out)}\n"


def tables(table: pd.DataFrame, lead_units: str) -> str:
    """Markdown: per setting, the mean over lead times of every score per model, then per lead time
    MSE and track error (storms) or MSE, PSNR and SSIM (images)."""
    parts = []
    order = list(dict.fromkeys(table["model"]))
    for setting, part in table.groupby("setting", sort=False):
        if setting:
            parts.append(f"### {setting}\n")
        means = part.groupby(["model", "score"], sort=False)["value"].mean().unstack()
        scores = [s for s in COLUMNS if s in means.columns]
        summary = pd.DataFrame({"model": [m for m in order if m in means.index]})
        for s in scores:
            summary[COLUMNS[s][0]] = [_cell(means.loc[m, s], s) for m in summary["model"]]
            if s == "psnr" and "mse" in means.columns:  # the earlier convention: from the mean MSE of the set
                pooled = 10 * np.log10(1.0 / means.loc[summary["model"], "mse"].to_numpy(float))
                summary["PSNR dB, pooled"] = [_cell(v, "psnr") for v in pooled]
        parts.append(f"Mean over lead times:\n\n{_markdown(summary)}\n")
        for s in ("mse", "track_km") if "track_km" in scores else ("mse", "psnr", "ssim"):
            if s not in scores:
                continue
            wide = part[part["score"] == s].pivot(index="model", columns="lead", values="value")
            wide = wide.loc[[m for m in order if m in wide.index]]
            out = pd.DataFrame({"model": wide.index})
            for lead in wide.columns:
                out[_lead(lead, lead_units)] = [_cell(v, s) for v in wide[lead]]
            parts.append(f"{COLUMNS[s][0]} per lead time:\n\n{_markdown(out)}\n")
    return "\n".join(parts)


def _style(i: int) -> dict:
    """Line i's look: the 10 default colours, then the same colours dashed with square markers."""
    return {"color": f"C{i % 10}", "linestyle": "-" if i < 10 else "--", "marker": "o" if i < 10 else "s"}


def plot_leads(table: pd.DataFrame, path: Path, lead_units: str) -> None:
    """MSE x1e-3 against lead time, a line per model (the first setting)."""
    first = table[(table["setting"] == table["setting"].iloc[0]) & (table["score"] == "mse")]
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for i, (model, part) in enumerate(first.groupby("model", sort=False)):
        ax.plot(part["lead"], part["value"] * 1e3, **_style(i), label=model)
    ax.set(xlabel=f"lead time ({lead_units})", ylabel="MSE x1e-3 ([0, 1]-scaled)", yscale="log")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    _save(fig, path)


def plot_rates(table: pd.DataFrame, rates: dict[str, float], path: Path) -> None:
    """Mean MSE x1e-3 over lead times against the input sampling rate, a line per model."""
    mse = table[table["score"] == "mse"].groupby(["model", "setting"], sort=False)["value"].mean().reset_index()
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for i, (model, part) in enumerate(mse.groupby("model", sort=False)):
        ax.plot([rates[s] * 100 for s in part["setting"]], part["value"] * 1e3, **_style(i), label=model)
    ax.set(xlabel="input frames observed (%)", ylabel="mean MSE x1e-3", yscale="log")
    ax.invert_xaxis()
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)


def _save(fig, path: Path) -> None:
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format=path.suffix[1:])


def write(
    out: Path,
    title: str,
    header: str,
    results: list[dict],
    lead_units: str,
    rates: dict[str, float] | None = None,
    subject: str | None = None,
    cluster: str = "storm",
) -> list[Path]:
    """Write scores.csv, cases.csv, results.md and the plots into ``out``; return their paths.
    ``subject``: the model compared with every other one; ``cluster``: what the intervals resample
    (the ``storm`` column of the cases, named so in the text)."""
    table, cases = long_table(results), case_table(results)
    means = table.groupby(["setting", "model", "lead", "score"], sort=False)["value"].mean().reset_index()
    paths = [out / "scores.csv", out / "cases.csv", out / "results.md", out / "mse_by_lead.png"]
    for path, frame in zip(paths[:2], (table, cases)):
        with replacing(path) as tmp:
            frame.to_csv(tmp, index=False)
    plot_leads(means, paths[3], lead_units)
    figures = f"![MSE against lead time]({paths[3].name})\n"
    if rates:
        paths.append(out / "mse_by_rate.png")
        plot_rates(means, rates, paths[-1])
        figures += f"![MSE against sampling rate]({paths[-1].name})\n"
    scored_lpips = bool(np.isfinite(table.loc[table["score"] == "lpips", "value"]).any())
    conventions = IMAGE_CONVENTIONS + LPIPS_NOTES[scored_lpips]
    conventions += " " + STORM_CONVENTIONS if "track_km" in set(table["score"]) else ""
    overview = rate_table(means) + "\n" if rates else ""
    text = (
        f"# {title}\n\n{header}\n\nMeans over the training seeds.\n\n{overview}{tables(means, lead_units)}\n"
        f"{_uncertainty(cases, subject, cluster, lead_units)}"
    )
    text += f"\n{seed_spread(table)}\n{figures}\n{conventions}\n"
    with replacing(paths[2]) as tmp:
        tmp.write_text(text)
    return paths


def _uncertainty(cases: pd.DataFrame, subject: str | None, cluster: str, lead_units: str) -> str:
    """The interval and comparison tables of every setting."""
    parts = []
    for setting, part in seed_means(cases).groupby("setting", sort=False):
        parts.append(f"### {setting or 'Test set'}: intervals\n")
        scores = LEAD_SCORES if "track_km" in set(part["score"]) else IMAGE_LEAD_SCORES
        for score in scores:
            parts.append(intervals(part, score, cluster, lead_units))
        if subject:
            parts.extend(comparison(part, subject, score, cluster, lead_units) for score in scores)
    return "\n".join(p for p in parts if p)

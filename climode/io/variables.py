"""How ``open_fields`` finds the requested variables in a file and reads each one.

A requested name is found by its ``mapping`` entry alone (``--vars NAME=VAR``, ``NAME=VAR@LEVEL`` for
one level, ``NAME=VAR:rate`` for an accumulation read as a rate), else by the name itself, else (U850,
V850, PSL, ``climode.conventions.VARIABLES``) by its known aliases and then its CF standard_name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from ..conventions import VARIABLES
from ..errors import ClimodeError
from .coords import normalise_coords, regular, rename_coords, select_level

RATE = ":rate"  # --vars NAME=VAR:rate reads an accumulation as a rate
DEFAULT_CHUNKS = {"time": 1}


def parse_variables(text: str, mapped: bool = False) -> tuple[list[str], dict[str, str]]:
    """The one reading of ``--vars``-style text: ``"U850=u,V850=v,precip"`` -> (["U850", "V850",
    "precip"], {"U850": "u", "V850": "v"}) (requested names in order; requested name -> name in the
    file). With ``mapped`` every item must be ``NAME=FILE_NAME``. Empty text gives nothing."""
    names: list[str] = []
    mapping: dict[str, str] = {}
    form = "NAME=FILE_NAME" if mapped else "NAME or NAME=FILE_NAME"
    for item in text.split(",") if text.strip() else []:
        key, sep, value = (part.strip() for part in item.partition("="))
        if not key or (sep and not value) or "=" in value or (mapped and not sep):
            raise ClimodeError(
                f"malformed variable list {text!r}: expected {form}[,{form}...], got item {item.strip()!r}"
            )
        if key in names:
            raise ClimodeError(f"malformed variable list {text!r}: {key!r} is named twice")
        names.append(key)
        if sep:
            mapping[key] = value
    return names, mapping


def parse_mapping(text: str) -> dict[str, str]:
    """``"U850=u,V850=v,PSL=p"`` -> ``{"U850": "u", ...}`` (requested name -> name in file)."""
    return parse_variables(text, mapped=True)[1]


def read_mapping(mapping: Mapping[str, str] | str | None, names: tuple[str, ...]) -> dict[str, str]:
    """``--vars`` text (``parse_variables``: a bare name means itself) or a dict, for ``names`` only."""
    if isinstance(mapping, str):
        listed, pairs = parse_variables(mapping)
        mapping = {**{n: n for n in listed}, **pairs}
    mapping = dict(mapping or {})
    unknown = [n for n in mapping if n not in names]
    if unknown:
        raise ClimodeError(
            f"the variable list names {', '.join(unknown)}, which {'is' if len(unknown) == 1 else 'are'} not among "
            f"the variables asked for ({', '.join(names)})"
        )
    return mapping


def lookup(name: str, mapping: Mapping[str, str]) -> tuple[tuple[str, ...], str | None, float | None]:
    """Names to try for ``name``, the CF standard_name to fall back on and the level asked for
    (``VAR@LEVEL``); a mapping entry is exclusive."""
    if name in mapping:
        source, sep, level = mapping[name].removesuffix(RATE).partition("@")
        if not sep:
            return (source,), None, None
        try:
            return (source,), None, float(level.strip().lower().removesuffix("hpa"))
        except ValueError:
            raise ClimodeError(
                f"malformed level in {name}={mapping[name]}: expected VAR@LEVEL with a number (hPa for "
                "pressure levels, e.g. u@850)"
            ) from None
    known = VARIABLES.get(name)
    return ((name, *known.aliases), known.standard_name, None) if known else ((name,), None, None)


def _find(ds: xr.Dataset, names: tuple[str, ...], standard_name: str | None) -> str | None:
    found = next((n for n in names if n in ds.data_vars), None)
    if found is None and standard_name is not None:
        found = next((n for n, v in ds.data_vars.items() if v.attrs.get("standard_name") == standard_name), None)
    return found


def find_variables(
    ds: xr.Dataset, names: Sequence[str], mapping: Mapping[str, str], path: Path
) -> dict[str, tuple[str, float | None]]:
    """The requested ``names`` that the file ``path`` (opened as ``ds``) holds: requested name ->
    (its variable there, the level asked for); one variable (at one level) read as two of them is
    refused."""
    found = {}
    for name in names:
        candidates, standard_name, level = lookup(name, mapping)
        var = _find(ds, candidates, standard_name)
        if var is not None:
            found[name] = (var, level)
    _check_sources(found, path)
    return found


def _check_sources(found: Mapping[str, tuple[str, float | None]], path: Path) -> None:
    """Refuse one variable of a file (at one level) read as two of the requested ones."""
    seen: dict[tuple[str, float | None], str] = {}
    for name, source in found.items():
        if source in seen:
            var = source[0] + ("" if source[1] is None else f"@{source[1]:g}")
            raise ClimodeError(
                f"{path}: {var} would be read as both {seen[source]} and {name}; each variable needs its own "
                f"source (e.g. --vars U850=u,V850=v)"
            )
        seen[source] = name


def as_requested(
    ds: xr.Dataset, var: str, name: str, level: float | None, path: Path, chunks: Mapping[str, int] | None
) -> tuple[xr.DataArray, str]:
    """File variable ``var`` of ``ds`` as ``name`` in the toolkit's convention: its own coordinates
    (a grid of its own, CF-named), one level, a regular grid, chunked (``chunks``, default one time
    step per chunk unless already dask); and what was done to its grid, if anything, in a sentence."""
    sub = rename_coords(ds[[var]].rename({var: name}) if var != name else ds[[var]])
    sub = sub.chunk({k: v for k, v in _chunks(sub, chunks).items() if k in sub.dims})
    da = select_level(sub[name], name, var, level, str(path))
    for coord in ("lat", "lon"):
        bad = int((~np.isfinite(np.asarray(da[coord].values, dtype=float))).sum()) if coord in da.coords else 0
        if bad:
            raise ClimodeError(
                f"{path}: coordinate {coord} of {var} has {bad} missing value(s) (NaN); every cell needs one"
            )
    note = ""
    if "lat" in da.coords and da["lat"].ndim >= 2:
        da, note = regular(da, str(path))
    return normalise_coords(da.to_dataset(name=name))[name], note


def _chunks(sub: xr.Dataset, chunks: Mapping[str, int] | None) -> Mapping[str, int]:
    return DEFAULT_CHUNKS if chunks is None and not _has_dask(sub) else (chunks or {})


def _has_dask(ds: xr.Dataset) -> bool:
    """Whether ``ds`` already holds dask arrays (a zarr store opened with its own chunks)."""
    return any(v.chunks is not None for v in ds.data_vars.values())


__all__ = ["RATE", "as_requested", "find_variables", "lookup", "parse_mapping", "parse_variables", "read_mapping"]

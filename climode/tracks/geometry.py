"""Geometry of storm positions on the sphere: great-circle distances, destinations, boxes."""

from __future__ import annotations

import numpy as np
import pandas as pd

EARTH_RADIUS_KM = 6371.0
KM_PER_DEG = np.pi * EARTH_RADIUS_KM / 180.0
Box = tuple[float, float]  # (low, high) degrees


def great_circle_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle (haversine) distance in km between points given in degrees; broadcasts."""
    phi1, phi2 = np.radians(lat1), np.radians(lat2)
    dlam = np.radians(np.asarray(lon2, float) - np.asarray(lon1, float))
    h = np.sin((phi2 - phi1) / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlam / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def _destination(lat, lon, bearing, distance_deg) -> tuple[np.ndarray, np.ndarray]:
    """Point reached from (lat, lon) along ``bearing`` (rad, from north) after ``distance_deg`` of arc."""
    phi, lam, delta = np.radians(lat), np.radians(lon), np.radians(distance_deg)
    phi2 = np.arcsin(np.sin(phi) * np.cos(delta) + np.cos(phi) * np.sin(delta) * np.cos(bearing))
    lam2 = lam + np.arctan2(np.sin(bearing) * np.sin(delta) * np.cos(phi), np.cos(delta) - np.sin(phi) * np.sin(phi2))
    return np.degrees(phi2), np.degrees(lam2) % 360.0


def _lon_inside(lon: np.ndarray, lon_range: Box) -> np.ndarray:
    west, east = lon_range
    lon = np.asarray(lon) % 360.0
    return (lon >= west) & (lon <= east) if west <= east else (lon >= west) | (lon <= east)


def in_box(tracks: pd.DataFrame, lat_range: Box, lon_range: Box) -> pd.DataFrame:
    """Rows inside a lat/lon box (deg, bounds included); lon bounds in 0..360, (300, 60) wraps 0E."""
    return tracks[_inside(tracks, lat_range, lon_range)]


def _inside(tracks: pd.DataFrame, lat_range: Box, lon_range: Box) -> np.ndarray:
    lat = tracks["lat"].to_numpy()
    return (lat >= lat_range[0]) & (lat <= lat_range[1]) & _lon_inside(tracks["lon"].to_numpy(), lon_range)


def storm_periods(tracks: pd.DataFrame, lat_range: Box, lon_range: Box) -> pd.DataFrame:
    """Columns storm, start, end: one row per contiguous stay of a storm inside the box."""
    ordered = tracks.sort_values(["storm", "time"], kind="stable")
    inside = _inside(ordered, lat_range, lon_range)
    storm = ordered["storm"].to_numpy()
    continues = np.r_[False, inside[:-1] & (storm[1:] == storm[:-1])]
    stay = np.cumsum(inside & ~continues)
    stays = ordered[inside].assign(stay=stay[inside]).groupby("stay", sort=True)
    return stays.agg(storm=("storm", "first"), start=("time", "first"), end=("time", "last")).reset_index(drop=True)

"""Geography of gridded fields and storms: regular lat/lon grids (``grid``), basin tiles cut from
them (``tiles``), storms on the sphere -- distances, centre fits, paths, intensity (``storms``) --
and the built-in storm detector (``detect``). Built on numpy and xarray only; nothing here imports
the model, training or verification."""

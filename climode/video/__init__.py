"""Video: the paper's datasets in their published layouts (``layouts``: kth, mgif, penn, folder),
read once into a cache (``readers``), cut into extrapolation or interpolation samples
(``clips``), and clips generated at frame rates never recorded (``retime``, ``write``;
``python -m climode.video``). Training and the protocols use them by dataset name
(``climode.data.DATASETS``)."""

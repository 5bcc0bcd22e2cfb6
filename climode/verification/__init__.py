"""Verification: forecast fields against a truth file (``truth``: ``verify``; ``matching``: their
times and grids matched; ``tables``: ``format_table``), metrics as small array-in, array-out
functions (``metrics``), models scored side by side on a dataset's samples (``scoring``), storm
skill with intervals over storms (``skill``, ``intervals``) and the CLIPER track baseline
(``cliper``)."""

from .tables import format_table
from .truth import verify

__all__ = ["format_table", "verify"]

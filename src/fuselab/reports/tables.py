"""The one writer of markdown tables (pandas; cells are written as given, never re-parsed)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table; ``rows`` hold the cells already formatted."""
    frame = pd.DataFrame([[str(c) for c in r] for r in rows], columns=[str(h) for h in header])
    return frame.to_markdown(index=False, disable_numparse=True)

"""A fusion level with a bug (not a user's mistake), for tests/cli/test_errors.py."""

from __future__ import annotations

from torch import nn


class BuggyFusion(nn.Module):
    def __init__(self, ctx, **kwargs) -> None:
        super().__init__()
        raise ValueError("injected bug in a fusion module")

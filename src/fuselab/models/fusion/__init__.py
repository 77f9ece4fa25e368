"""Fusion levels (config group ``fusion``); each level is defined in docs/architecture.md."""

from fuselab.models.fusion.base import FusionContext, FusionOutput
from fuselab.models.fusion.conditioned import ConditionedFusion
from fuselab.models.fusion.crossmodal import CrossModalFusion
from fuselab.models.fusion.early import EarlyFusion
from fuselab.models.fusion.feature import FeatureFusion
from fuselab.models.fusion.hybrid import HybridFusion
from fuselab.models.fusion.late import LateFusion

__all__ = [
    "ConditionedFusion",
    "CrossModalFusion",
    "EarlyFusion",
    "FeatureFusion",
    "FusionContext",
    "FusionOutput",
    "HybridFusion",
    "LateFusion",
]

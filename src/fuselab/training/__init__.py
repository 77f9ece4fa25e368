"""Training: the one LightningModule (:class:`~fuselab.training.module.FusionTask`), its losses
and metrics, the objects of a run built from the config, the run summary, and evaluation of a
checkpoint (robustness included)."""

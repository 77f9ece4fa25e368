"""Choice names checked before anything heavy is imported (no torch here)."""

CELLS = ("rnn", "lstm", "gru")
POOLINGS = ("last", "mean", "max", "attention")
PRECISIONS = ("32", "32-true", "bf16-mixed", "16-mixed")


def process_rank() -> int:
    """This process's global rank from the launcher's environment (as Lightning reads it)."""
    import os

    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if key in os.environ:
            return int(os.environ[key])
    return 0

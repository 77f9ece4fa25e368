"""Choice names checked before anything heavy is imported (no torch here)."""

CELLS = ("rnn", "lstm", "gru")
POOLINGS = ("last", "mean", "max", "attention")
PRECISIONS = ("32", "32-true", "bf16-mixed", "16-mixed")

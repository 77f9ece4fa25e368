"""Choice names checked before anything heavy is imported (no torch here)."""

CELLS = ("rnn", "lstm", "gru")
# what the rnn group may choose: the recurrent cells and the Transformer baseline
ENCODERS = (*CELLS, "transformer")
POOLINGS = ("last", "mean", "max", "attention")
PRECISIONS = ("32", "32-true", "bf16-mixed", "16-mixed")
# the decoder of generation targets
ATTENTIONS = ("none", "additive", "dot", "hierarchical")
DECODER_INITS = ("fused", "zero")

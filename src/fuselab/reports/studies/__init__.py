"""Studies under ``experiments/``: their spec, running them, and their report."""

"""Runs: one job from a composed config (train or evaluate) with its bookkeeping, sweeps that
resume, DDP inside a multirun, and the resolvers that name sweep and job directories.
Light at import time: torch and Lightning load only when a job starts."""

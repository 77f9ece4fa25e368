"""Reports: comparison tables and plots of finished runs, the end-of-sweep report, and studies
that reproduce published baselines."""

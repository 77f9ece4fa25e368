"""Encoders, fusion levels and heads; :func:`fuselab.models.build.build_model` puts them together."""

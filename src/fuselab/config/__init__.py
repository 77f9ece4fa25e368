"""Checks of a composed config, run before torch or Lightning load (the config-time stage)."""

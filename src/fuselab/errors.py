"""The one kind of error fuselab shows as a single line: a mistake the user can fix.

Raise :class:`ConfigError` (with a message that names the fix) for a bad setting, file or
combination. Anything else is a bug and keeps its traceback: the command-line entry points turn
only ``ConfigError`` into a one-line message.
"""

from __future__ import annotations

import errno


class ConfigError(ValueError):
    """A config value, combination or input that cannot work; the message names the fix."""


# Lightning's own "your Trainer settings cannot work" (e.g. trainer.devices=0, a checkpoint
# monitor that is never logged): matched by name, so this module imports no Lightning
LIBRARY_USER_ERRORS = ("MisconfigurationException",)
FULL_DISK = (errno.ENOSPC, errno.EDQUOT)


def user_error(exc: BaseException) -> ConfigError | None:
    """The :class:`ConfigError` behind ``exc`` (Hydra's ``instantiate`` wraps what a constructor
    raises, so the chain of causes is followed), or None when ``exc`` is not a user's mistake."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConfigError):
            return seen
        if type(seen).__name__ in LIBRARY_USER_ERRORS:
            return ConfigError(f"(Lightning) {seen}")
        if isinstance(seen, OSError) and seen.errno in FULL_DISK:
            where = f" writing {seen.filename}" if seen.filename else ""
            return ConfigError(
                f"the disk is full{where} ({seen.strerror}); free some space, or set paths.log_dir=<dir on another "
                "disk>, and run again (resume=auto goes on from the last checkpoint)"
            )
        seen = seen.__cause__
    return None

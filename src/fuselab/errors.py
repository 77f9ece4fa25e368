"""Errors a user can fix from the command line."""


class ConfigError(ValueError):
    """A config value, combination or input that cannot work; the message names the fix."""


def user_error(exc: BaseException) -> ConfigError | None:
    """The ConfigError behind ``exc`` if it is a user's mistake (a ValueError raised while
    building datamodule or model, possibly wrapped by Hydra's instantiate), else None."""
    seen = exc
    while seen is not None:
        if isinstance(seen, ValueError) and type(seen).__module__ != "omegaconf.errors":
            return seen if isinstance(seen, ConfigError) else ConfigError(str(seen))
        seen = seen.__cause__  # type: ignore[assignment]
    return None

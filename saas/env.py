"""Reading one setting from the environment: a string, a whole number, a number, seconds, a pause, a yes/no,
a list of waits. Each refuses a malformed value with ConfigError naming the variable (saas.config reads every
setting through these; areas with settings of their own, such as saas.broadcasts.settings, too)."""
from __future__ import annotations

import math
import os


class ConfigError(RuntimeError):
    """A setting is missing or malformed."""


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip()


def env_int(name: str, default: int) -> int:
    raw = env_str(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None


def env_float(name: str, default: float) -> float:
    raw = env_str(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


def env_seconds(name: str, default: float) -> float:
    """A duration in seconds that must be positive (a timeout of 0 would wait forever or fail at once)."""
    value = env_float(name, default)
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
    return value


def env_pause(name: str, default: float) -> float:
    """A wait in seconds that may be 0 (none), never negative and at most a minute."""
    value = env_float(name, default)
    if not (0 <= value <= 60):
        raise ConfigError(f"{name} must be between 0 and 60 seconds, got {value!r}")
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = env_str(name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def env_seconds_list(name: str, default: str) -> tuple[int, ...]:
    """A comma-separated list of whole seconds, each at least 1 (e.g. "60,300,900")."""
    raw = env_str(name, default)
    try:
        values = tuple(int(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"{name} must be whole seconds separated by commas, got {raw!r}") from None
    if not values or any(value < 1 for value in values):
        raise ConfigError(f"{name} must list at least one wait of 1 second or more, got {raw!r}")
    return values

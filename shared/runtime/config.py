"""Service configuration: `services/base.yml` (what every service shares) under each service's
`config.yml` (its own keys and overrides), read the way `nameko run` reads a file.

Values are `${VAR:default}` substitutions, so operators configure everything through
environment variables (see docker-compose.yml); `shared.runtime.serve` (so `grassroots up` and
the containers), the CLI and tests read the same files. Which services exist is the catalogue's
business (shared/runtime/catalogue.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from nameko.cli.main import IMPLICIT_ENV_VAR_MATCHER, env_var_constructor

ROOT = Path(__file__).resolve().parents[2]
# Where `grassroots up` keeps its state: databases, logs, broker data, tokens, signing key.
VAR = Path(os.environ.get("GRASSROOTS_VAR") or ROOT / "var")
BASE_CONFIG = ROOT / "services" / "base.yml"


def config_path(service: str) -> Path:
    return ROOT / "services" / service / "config.yml"


class _ConfigLoader(yaml.SafeLoader):
    """nameko's `${VAR:default}` substitution, on a loader of our own: nameko's
    `setup_yaml_parser` installs it on yaml's global SafeLoader, for every YAML file read."""


_ConfigLoader.add_constructor("!env_var", env_var_constructor)
_ConfigLoader.add_implicit_resolver("!env_var", IMPLICIT_ENV_VAR_MATCHER, None)


def _read(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_ConfigLoader) or {}  # noqa: S506 - a safe loader


def load_config_file(path: Path | str) -> dict[str, Any]:
    """A service's config.yml over the base, with the current environment substituted; the
    service (the file's folder) names itself in its log lines."""
    path = Path(path)
    config = {**_read(BASE_CONFIG), **_read(path)}
    for formatter in (config.get("LOGGING") or {}).get("formatters", {}).values():
        if "format" in formatter:
            formatter["format"] = formatter["format"].replace("{service}", path.parent.name)
    return config


def load_config(service: str) -> dict[str, Any]:
    """The service's configuration with the current environment substituted."""
    return load_config_file(config_path(service))

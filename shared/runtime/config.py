"""Service configuration: each service's `config.yml`, read the way `nameko run` reads it.

Values are `${VAR:default}` substitutions, so operators configure everything through
environment variables (see docker-compose.yml); the CLI and tests read the same files.
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
SERVICES = ("visits", "compliance", "gateway")
WRITE_SERVICES = ("visits",)


def config_path(service: str) -> Path:
    return ROOT / "services" / service / "config.yml"


class _ConfigLoader(yaml.SafeLoader):
    """nameko's `${VAR:default}` substitution, on a loader of our own: nameko's
    `setup_yaml_parser` installs it on yaml's global SafeLoader, for every YAML file read."""


_ConfigLoader.add_constructor("!env_var", env_var_constructor)
_ConfigLoader.add_implicit_resolver("!env_var", IMPLICIT_ENV_VAR_MATCHER, None)


def load_config(service: str) -> dict[str, Any]:
    """The service's configuration with the current environment substituted."""
    with open(config_path(service), encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_ConfigLoader) or {}  # noqa: S506 - a safe loader

"""Service configuration: each service's `config.yml`, read the way `nameko run` reads it.

Values are `${VAR:default}` substitutions, so operators configure everything through
environment variables (see docker-compose.yml); the CLI and tests read the same files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from nameko.cli.main import setup_yaml_parser

ROOT = Path(__file__).resolve().parent.parent
# Where `grassroots up` keeps its state: databases, logs, broker data, tokens, signing key.
VAR = Path(os.environ.get("GRASSROOTS_VAR") or ROOT / "var")
SERVICES = ("visits", "compliance", "gateway")
WRITE_SERVICES = ("visits",)


def config_path(service: str) -> Path:
    return ROOT / "services" / service / "config.yml"


def load_config(service: str) -> dict[str, Any]:
    """The service's configuration with the current environment substituted."""
    setup_yaml_parser()
    with open(config_path(service), encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}

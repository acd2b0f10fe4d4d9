"""The gateway in front of real services (the `api` fixture of test_gateway.py), for every
module here that talks HTTP."""

from tests.integration.test_gateway import api  # noqa: F401 (a fixture, used by name)

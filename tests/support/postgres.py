"""The tests' throwaway PostgreSQL server: it lives in shared/tools/postgres.py, which the
chaos suite also uses; kept importable here for the tests' fixtures."""

from shared.tools.postgres import TempPostgres, find_pg_bindir

__all__ = ["TempPostgres", "find_pg_bindir"]

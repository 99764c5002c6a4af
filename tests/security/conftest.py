"""Fixtures for the security tests. Keep it small: helpers live in tests/support/."""

from e2e.harness import make_services  # noqa: F401  (fixture: the services as processes)
from support.security_world import world, world_factory  # noqa: F401  (fixtures)

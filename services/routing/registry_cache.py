"""The registry as the routing workers see it: loaded from the database, reloaded when it
changes (any instance's stage change is visible to every instance within `refresh` seconds)."""

import logging
import time

from nameko.extensions import DependencyProvider

from services.routing import registry_store
from services.routing.domain.registry import Registry

log = logging.getLogger(__name__)


class RegistryCache(DependencyProvider):
    def __init__(self, db_attr: str = "db", refresh: float = 0.5):
        self.db_attr = db_attr
        self.refresh = refresh
        self._registry: Registry | None = None
        self._version = None
        self._checked = 0.0

    def _database(self):
        """The service's bound Database provider (its engine and sessions)."""
        return next(d for d in self.container.dependencies if d.attr_name == self.db_attr)

    def current(self) -> Registry:
        now = time.monotonic()
        if self._registry is None or now - self._checked >= self.refresh:
            provider = self._database()
            with provider.sessionmaker() as session:
                version = registry_store.version(session)
                if self._registry is None or version != self._version:
                    self._registry = registry_store.load(session)
                    self._version = version
                    log.info("unit registry loaded: %d units", len(self._registry))
            self._checked = now
        return self._registry

    def get_dependency(self, worker_ctx):
        return self

from alembic import context

from services.notification.db import metadata
from shared.migrate import run_migrations

run_migrations(context, metadata)

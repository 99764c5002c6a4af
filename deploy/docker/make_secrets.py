"""Generate the secrets of a Dumas deployment that nobody provided, once.

    python make_secrets.py DIR

Writes one file per secret, named like the environment variable that carries it, into DIR unless
it exists already, so a restart never changes a secret. Mode 0444: the broker and database
containers run as other users; the volume is mounted only into this deployment's containers.
The containers export these files as environment variables (entrypoint.sh) unless `.env` sets
the variable itself.
"""

import os
import secrets
import sys
from pathlib import Path

# Secrets that may be generated; provider credentials (WhatsApp, SMTP) come from the operator.
GENERATED = (
    "DUMAS_SESSION_SECRET",  # signs staff sessions; shared by every service
    "INTAKE_DATA_KEY",  # intake: encrypts confidential complainant data
    "RABBITMQ_PASSWORD",
    "POSTGRES_PASSWORD",
    "INTAKE_DB_PASSWORD",
    "ROUTING_DB_PASSWORD",
    "NOTIFICATION_DB_PASSWORD",
    "REPORTING_DB_PASSWORD",
    "REPLICATION_PASSWORD",  # the streaming replica's role (profile `replica`)
    "GRAFANA_ADMIN_PASSWORD",
    "MINIO_ROOT_PASSWORD",
    "DUMAS_S3_ACCESS_KEY_ID",  # the services' object-storage user (deploy/minio/setup.sh)
    "DUMAS_S3_SECRET_ACCESS_KEY",
)
# S3-style keys: an access key id of 20 characters and a secret of 40 (MinIO's limits).
GENERATORS = {
    "DUMAS_S3_ACCESS_KEY_ID": lambda: "DUMAS" + secrets.token_hex(8)[:15].upper(),
    "DUMAS_S3_SECRET_ACCESS_KEY": lambda: secrets.token_urlsafe(30),
}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    directory = Path(argv[0])
    directory.mkdir(parents=True, exist_ok=True)
    created = []
    for name in GENERATED:
        path = directory / name
        if path.exists():
            continue
        # URL-safe: the passwords go into database and AMQP URLs unescaped.
        value = GENERATORS.get(name, lambda: secrets.token_urlsafe(32))()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        with os.fdopen(fd, "w") as fh:
            fh.write(value)
        created.append(name)
    print(f"secrets: {len(created)} generated ({', '.join(created) or 'none'}) in {directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

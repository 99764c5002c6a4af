#!/bin/bash
# First start of the PostgreSQL primary (docker-entrypoint-initdb.d): the `replicator` role the
# streaming replica connects as (deploy/postgres/replica.sh), and the pg_hba.conf line that
# lets it in with a password. The password comes from the environment (`.env`) or the
# generated secrets volume, like the databases' (10-dumas-databases.sh).
set -euo pipefail

password=${REPLICATION_PASSWORD:-}
if [[ -z $password && -r /run/dumas-secrets/REPLICATION_PASSWORD ]]; then
  password=$(cat /run/dumas-secrets/REPLICATION_PASSWORD)
fi
[[ -n $password ]] || { echo "postgres init: REPLICATION_PASSWORD is not set" >&2; exit 1; }

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -v password="$password" <<'SQL'
SELECT format('CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD %L', :'password')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'replicator') \gexec
SQL
if ! grep -q '^host replication replicator ' "$PGDATA/pg_hba.conf"; then
  echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
fi
echo "postgres init: role replicator for the streaming replica"

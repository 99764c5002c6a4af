#!/bin/bash
# A hot-standby streaming replica of the Dumas primary (docker-compose.yml, profile `replica`).
#   replica.sh [postgres options...]
# First start (empty $PGDATA): waits for the primary, copies it with pg_basebackup over the
# replication protocol (WAL streamed during the copy, a physical replication slot so the primary
# keeps the WAL the replica still needs, standby.signal and primary_conninfo written), then runs
# postgres as a read-only hot standby. Later starts just run postgres: it resumes streaming.
# Runs as the postgres user. Promote it after losing the primary: `pg_ctl promote`
# (docs/deployment.md).
set -euo pipefail

primary_host=${PRIMARY_HOST:-postgres}
primary_port=${PRIMARY_PORT:-5432}
slot=${REPLICATION_SLOT:-dumas_replica}
password=${REPLICATION_PASSWORD:-}
if [[ -z $password && -r /run/dumas-secrets/REPLICATION_PASSWORD ]]; then
  password=$(cat /run/dumas-secrets/REPLICATION_PASSWORD)
fi
[[ -n $password ]] || { echo "replica: REPLICATION_PASSWORD is not set" >&2; exit 1; }

if [[ ! -s $PGDATA/PG_VERSION ]]; then
  for _ in $(seq 1 "${PRIMARY_WAIT_SECONDS:-120}"); do
    pg_isready -q -h "$primary_host" -p "$primary_port" && break
    sleep 1
  done
  export PGPASSWORD=$password
  slot_exists=$(psql -h "$primary_host" -p "$primary_port" -U replicator -d postgres -Atc \
    "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$slot'")
  create_slot=()
  [[ $slot_exists == 1 ]] || create_slot=(--create-slot)
  echo "replica: copying the primary $primary_host:$primary_port (slot $slot)"
  mkdir -p "$PGDATA"
  chmod 0700 "$PGDATA"
  pg_basebackup -h "$primary_host" -p "$primary_port" -U replicator -D "$PGDATA" \
    --wal-method=stream --write-recovery-conf --slot="$slot" "${create_slot[@]}" \
    --checkpoint=fast --progress
  unset PGPASSWORD
fi
exec postgres -D "$PGDATA" -c hot_standby=on "$@"

#!/bin/bash
# Logical backups of every Dumas database: one pg_dump (custom format) per database per run,
# kept BACKUP_KEEP_DAYS days, every BACKUP_INTERVAL_SECONDS. Restore with pg_restore (see
# docs/deployment.md). Point-in-time recovery uses the WAL archive of the postgres container.
set -euo pipefail

printf '%s:*:*:%s:%s\n' "${PGHOST:-postgres}" "${PGUSER:-postgres}" \
  "$(cat /run/dumas-secrets/POSTGRES_PASSWORD)" > "${PGPASSFILE:-/tmp/.pgpass}"
chmod 600 "${PGPASSFILE:-/tmp/.pgpass}"

while true; do
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  for db in dumas_intake dumas_routing dumas_notification dumas_reporting; do
    target="/backups/${db}-${stamp}.dump"
    if pg_dump --format=custom --file="${target}.partial" "$db"; then
      mv "${target}.partial" "$target"
      echo "backup: $target ($(du -h "$target" | cut -f1))"
    else
      rm -f "${target}.partial"
      echo "backup: FAILED for $db" >&2
    fi
  done
  find /backups -name 'dumas_*.dump' -mtime "+${BACKUP_KEEP_DAYS:-14}" -delete
  sleep "${BACKUP_INTERVAL_SECONDS:-86400}"
done

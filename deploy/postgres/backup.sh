#!/bin/bash
# Logical backups of every Dumas database: one pg_dump (custom format) per database per run,
# kept BACKUP_KEEP_DAYS days, every BACKUP_INTERVAL_SECONDS. Restore with pg_restore (see
# docs/deployment.md). Point-in-time recovery uses the WAL archive of the postgres container.
# A dump that fails leaves no file behind and makes the run's exit status non-zero
# (BACKUP_ONCE=1: one run, then exit with that status; tests/integration/test_deploy_artifacts.py).
set -euo pipefail

backup_dir=${BACKUP_DIR:-/backups}
prefix=${DUMAS_DB_PREFIX:-dumas_}
password_file=${POSTGRES_PASSWORD_FILE:-/run/dumas-secrets/POSTGRES_PASSWORD}
if [[ -r $password_file ]]; then
  printf '%s:*:*:%s:%s\n' "${PGHOST:-postgres}" "${PGUSER:-postgres}" "$(cat "$password_file")" \
    > "${PGPASSFILE:-/tmp/.pgpass}"
  chmod 600 "${PGPASSFILE:-/tmp/.pgpass}"
fi

backup_once() {
  local stamp db target failed=0
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  for db in "${prefix}intake" "${prefix}routing" "${prefix}notification" "${prefix}reporting"; do
    target="$backup_dir/${db}-${stamp}.dump"
    if pg_dump --format=custom --file="${target}.partial" "$db"; then
      mv "${target}.partial" "$target"
      echo "backup: $target ($(du -h "$target" | cut -f1))"
    else
      rm -f "${target}.partial"
      echo "backup: FAILED for $db" >&2
      failed=1
    fi
  done
  find "$backup_dir" -name "${prefix}*.dump" -mtime "+${BACKUP_KEEP_DAYS:-14}" -delete
  return "$failed"
}

if [[ ${BACKUP_ONCE:-0} == 1 ]]; then
  backup_once
  exit
fi
while true; do
  backup_once || true  # reported above; the next run tries again
  sleep "${BACKUP_INTERVAL_SECONDS:-86400}"
done

#!/bin/bash
# First start of the PostgreSQL container (docker-entrypoint-initdb.d): one role and one database
# per service, each role owning only its own database. Passwords come from the environment
# (`.env`) or, when not set there, from the generated secrets volume (/run/dumas-secrets).
set -euo pipefail

secret() {
  local name=$1 value=${!1:-}
  if [[ -z $value && -r /run/dumas-secrets/$name ]]; then
    value=$(cat "/run/dumas-secrets/$name")
  fi
  [[ -n $value ]] || { echo "postgres init: $name is not set" >&2; exit 1; }
  printf '%s' "$value"
}

prefix=${DUMAS_DB_PREFIX:-dumas_} # another prefix only for tests on a shared server
for service in intake routing notification reporting; do
  upper=${service^^}
  password=$(secret "${upper}_DB_PASSWORD")
  echo "postgres init: database ${prefix}${service} owned by ${prefix}${service}"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v role="${prefix}${service}" -v db="${prefix}${service}" -v password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"db" OWNER :"role" ENCODING 'UTF8' TEMPLATE template0;
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
\c :"db"
ALTER SCHEMA public OWNER TO :"role";
SQL
done

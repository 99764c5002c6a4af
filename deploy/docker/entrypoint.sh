#!/bin/sh
# Entry point of the Dumas image.
#   intake | routing | notification | reporting   run that service (nameko)
#   migrate [SERVICE ...]                         create/upgrade databases, seed the registry
#   dumas ARGS                                    any `dumas` command (dlq, accounts, ...)
#   make-secrets                                  generate missing secrets (first start)
# Secrets: every file in $DUMAS_SECRETS_DIR named like an environment variable is exported as
# that variable unless it is already set (values from .env win over generated ones).
set -eu

if [ -d "${DUMAS_SECRETS_DIR:-}" ]; then
  for file in "$DUMAS_SECRETS_DIR"/*; do
    [ -f "$file" ] || continue
    name=$(basename "$file")
    case "$name" in *[!A-Z0-9_]*) continue ;; esac
    eval "current=\${$name:-}"
    if [ -z "$current" ]; then
      value=$(cat "$file")
      export "$name=$value"
    fi
  done
fi

# <SERVICE>_DATABASE_URL from its parts when not given whole (the password may be generated).
if [ -n "${POSTGRES_HOST:-}" ]; then
  for svc in intake routing notification reporting; do
    upper=$(echo "$svc" | tr '[:lower:]' '[:upper:]')
    eval "url=\${${upper}_DATABASE_URL:-}; password=\${${upper}_DB_PASSWORD:-}"
    if [ -z "$url" ] && [ -n "$password" ]; then
      export "${upper}_DATABASE_URL=postgresql+psycopg2://dumas_${svc}:${password}@${POSTGRES_HOST}:${POSTGRES_PORT:-5432}/dumas_${svc}"
    fi
  done
fi
if [ -z "${AMQP_URI:-}" ] && [ -n "${RABBITMQ_HOST:-}" ] && [ -n "${RABBITMQ_PASSWORD:-}" ]; then
  export "AMQP_URI=amqp://${RABBITMQ_USER:-dumas}:${RABBITMQ_PASSWORD}@${RABBITMQ_HOST}:${RABBITMQ_PORT:-5672}/${RABBITMQ_VHOST:-dumas}"
fi

command=${1:-help}
case "$command" in
  intake|routing|notification|reporting)
    shift
    export DUMAS_SERVICE="$command"
    exec nameko run --config "services/$command/config.yaml" "services.$command.service" "$@"
    ;;
  migrate)
    shift
    exec python -m services.cli migrate "$@"
    ;;
  dumas)
    shift
    exec python -m services.cli "$@"
    ;;
  make-secrets)
    shift
    exec python /usr/local/lib/dumas/make_secrets.py "$@"
    ;;
  help|--help|-h)
    sed -n '2,9p' "$0"
    ;;
  *)
    exec "$@"
    ;;
esac

#!/bin/sh
# One-shot set-up of the bundled MinIO for Dumas's evidence attachments (docker-compose.yml,
# service minio-setup, image quay.io/minio/mc). Idempotent: run at every `docker compose up`.
#   - the bucket DUMAS_S3_BUCKET, private (no anonymous access);
#   - a policy allowing only that bucket's objects to be listed, read, written and deleted;
#   - the services' user DUMAS_S3_ACCESS_KEY_ID with that policy (never the root user).
# Secrets come from the environment (.env) or, when empty there, from the generated secrets
# volume ($DUMAS_SECRETS_DIR); they reach mc through MC_HOST_*, never its command line.
set -eu

secrets_dir=${DUMAS_SECRETS_DIR:-/run/dumas-secrets}

secret() {
  eval "value=\${$1:-}"
  if [ -z "$value" ] && [ -r "$secrets_dir/$1" ]; then
    value=$(cat "$secrets_dir/$1")
  fi
  if [ -z "$value" ]; then
    echo "minio setup: $1 is not set" >&2
    exit 1
  fi
  printf '%s' "$value"
}

root_password=$(secret MINIO_ROOT_PASSWORD)
access_key=$(secret DUMAS_S3_ACCESS_KEY_ID)
secret_key=$(secret DUMAS_S3_SECRET_ACCESS_KEY)
bucket=${DUMAS_S3_BUCKET:?DUMAS_S3_BUCKET is not set}
url=${MINIO_URL:-http://minio:9000}
scheme=${url%%://*}
host=${url#*://}
export MC_HOST_dumas="$scheme://${MINIO_ROOT_USER:-dumas-admin}:$root_password@$host"

policy=$(mktemp)
trap 'rm -f "$policy"' EXIT
cat > "$policy" <<JSON
{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": ["s3:GetBucketLocation", "s3:ListBucket"],
     "Resource": ["arn:aws:s3:::$bucket"]},
    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
     "Resource": ["arn:aws:s3:::$bucket/*"]}
  ]
}
JSON

mc mb --ignore-existing "dumas/$bucket"
mc anonymous set none "dumas/$bucket"
mc admin policy create dumas dumas-attachments "$policy"
# the secret key goes in on standard input, not as an argument
printf '%s\n' "$secret_key" | mc admin user add dumas "$access_key"
if ! out=$(mc admin policy attach dumas dumas-attachments --user "$access_key" 2>&1); then
  case "$out" in
    *"already in effect"*) ;;
    *) echo "$out" >&2; exit 1 ;;
  esac
fi
echo "minio setup: bucket $bucket ready, user $access_key limited to it"

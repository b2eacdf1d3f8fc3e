#!/bin/sh
# Writes the secrets infra/compose.yaml mounts, as random values, into infra/secrets/ (never
# committed).  Existing files are kept, so running it again changes nothing.
#
# The directory is 0700, so no other account on this machine can reach the files.  The files
# themselves are 0644: Compose bind-mounts each one into its containers as it is, and the
# servers there read them as their own unprivileged users (Kinko's uid 10001, postgres).
set -eu
cd "$(dirname "$0")"
mkdir -p secrets
chmod 0700 secrets
umask 022
random() { python3 -c 'import secrets; print(secrets.token_urlsafe(32))'; }
[ -f secrets/postgres_password ] || random > secrets/postgres_password
[ -f secrets/minio_root_user ] || echo "kinko-$(python3 -c 'import secrets; print(secrets.token_hex(4))')" > secrets/minio_root_user
[ -f secrets/minio_root_password ] || random > secrets/minio_root_password
if [ ! -f secrets/s3_credentials ]; then
  printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' \
    "$(cat secrets/minio_root_user)" "$(cat secrets/minio_root_password)" > secrets/s3_credentials
fi
echo "secrets in $(pwd)/secrets"

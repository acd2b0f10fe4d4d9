#!/bin/sh
# Write a new .env beside docker-compose.yml with fresh secrets: the PostgreSQL password, a
# RabbitMQ password per broker user and the key that signs log checkpoints. Refuses to
# overwrite an existing file: changing these on a running deployment needs docs/deploy.md.
# Usage: sh docker/new-env.sh [path]   (default: .env in the repository root)
set -eu
cd "$(dirname "$0")/.."
target="${1:-.env}"
if [ -e "$target" ]; then
    echo "new-env: $target exists; not overwriting it" >&2
    exit 1
fi
# Hex passwords: they go inside URLs (AMQP_URI, *_DATABASE_URL) without any escaping.
hex() { od -An -tx1 -N "$1" /dev/urandom | tr -d ' \n'; }
umask 077
cat > "$target" <<ENV
# Secrets of this Grassroots deployment (docs/deploy.md). Keep this file out of git and
# back it up with the databases: without GRASSROOTS_SIGNING_KEY the signed checkpoints
# cannot be verified.
POSTGRES_PASSWORD=$(hex 24)
VISITS_AMQP_PASSWORD=$(hex 24)
CASES_AMQP_PASSWORD=$(hex 24)
COMPLIANCE_AMQP_PASSWORD=$(hex 24)
CASEBOARD_AMQP_PASSWORD=$(hex 24)
GATEWAY_AMQP_PASSWORD=$(hex 24)
OPERATOR_AMQP_PASSWORD=$(hex 24)
GRASSROOTS_SIGNING_KEY=ed25519:$(head -c 32 /dev/urandom | base64 | tr -d '\n')
GRASSROOTS_PRINCIPAL_KEY=$(head -c 32 /dev/urandom | base64 | tr -d '\n')
ENV
echo "new-env: wrote $target (mode 600)"

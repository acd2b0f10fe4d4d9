#!/bin/sh
# The rabbitmq container's entrypoint: render the broker's users (definitions.template.json,
# written by `python -m shared.tools.brokerauth`) with the passwords from the environment
# (<USER>_AMQP_PASSWORD, one per @<USER>_AMQP_PASSWORD@ in the template), then run the image's
# own entrypoint, given as arguments. RabbitMQ imports the result on boot (20-grassroots.conf):
# no guest account, a user per service and one for the operator. The rendered file lives on a
# tmpfs, readable by the broker only; the passwords are never written to a volume.
set -eu
here="$(dirname "$0")"
template="${GRASSROOTS_DEFINITIONS_TEMPLATE:-$here/definitions.template.json}"
out="${GRASSROOTS_DEFINITIONS:-/run/grassroots/definitions.json}"
script=""
for name in $(grep -o '@[A-Z_]*_AMQP_PASSWORD@' "$template" | tr -d @ | sort -u); do
    eval "secret=\${$name:-}"
    case "$secret" in
        "" | *[!0-9A-Za-z]*)
            echo "rabbitmq-init: set $name, letters and digits only (docs/deploy.md)" >&2
            exit 64 ;;
    esac
    script="${script}s/@${name}@/${secret}/g;"
done
umask 077
mkdir -p "$(dirname "$out")"
sed "$script" "$template" > "$out"
if [ "$(id -u)" = 0 ] && id rabbitmq >/dev/null 2>&1; then
    chown rabbitmq:rabbitmq "$(dirname "$out")" "$out"  # the image runs the broker as rabbitmq
fi
exec "$@"

#!/bin/sh
# The image's default command: run the one service that SERVICE names, the way `grassroots up`
# does, from the image's WORKDIR. `exec` lets nameko receive SIGTERM and stop gracefully.
set -eu
service="${SERVICE:-}"
if [ -z "$service" ]; then
    echo "run-service: set SERVICE to the service to run (a folder of services/)" >&2
    exit 64
fi
config="services/$service/config.yml"
if [ ! -f "$config" ]; then
    echo "run-service: unknown service '$service' (no $config)" >&2
    exit 64
fi
exec python -m shared.runtime.serve run --config "$config" "services.$service.service"

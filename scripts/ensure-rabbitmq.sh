#!/usr/bin/env bash
# Make sure Debian's rabbitmq-server is installed. Nothing is started: the project runs nodes
# of its own (shared/tools/broker.py). Quiet when it is already there.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

have_rabbitmq() {
    command -v rabbitmq-server >/dev/null 2>&1 || [ -x /usr/sbin/rabbitmq-server ] \
        || [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]
}

# shellcheck source=apt-install.sh
source "$(dirname "$0")/apt-install.sh"

if ! have_rabbitmq; then
    apt_install rabbitmq-server
    have_rabbitmq || { echo "rabbitmq-server still not found after installing it" >&2; exit 1; }
    echo "installed rabbitmq-server"
fi

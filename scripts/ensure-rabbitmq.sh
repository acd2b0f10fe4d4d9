#!/usr/bin/env bash
# Make sure Debian's rabbitmq-server is installed. Nothing is started: the project runs nodes
# of its own (shared/broker.py). Quiet when it is already there.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

have_rabbitmq() {
    command -v rabbitmq-server >/dev/null 2>&1 || [ -x /usr/sbin/rabbitmq-server ] \
        || [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]
}

# apt_install PACKAGE...: as root, or through passwordless sudo; else say what is missing.
apt_install() {
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            echo "missing: $* -- install it with: sudo apt-get install $*" >&2
            exit 1
        fi
    fi
    local log
    log=$(mktemp)
    if ! { "${sudo[@]}" apt-get update -q && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q "$@"; } >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        rm -f "$log"
        echo "apt-get install $* failed" >&2
        exit 1
    fi
    rm -f "$log"
}

if ! have_rabbitmq; then
    apt_install rabbitmq-server
    have_rabbitmq || { echo "rabbitmq-server still not found after installing it" >&2; exit 1; }
    echo "installed rabbitmq-server"
fi

#!/usr/bin/env bash
# Sourced by the ensure-*.sh scripts.
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

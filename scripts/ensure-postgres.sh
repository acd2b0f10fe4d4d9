#!/usr/bin/env bash
# Make sure PostgreSQL server binaries exist under /usr/lib/postgresql/*/bin: the tests start
# throwaway servers from them (tests/support/postgres.py). Quiet when they are already there.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

have_postgres() {
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
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

if ! have_postgres; then
    # Debian 12's postgresql-15; the `postgresql` metapackage names the release's own version.
    if apt-cache show postgresql-15 >/dev/null 2>&1; then
        apt_install postgresql-15
    else
        apt_install postgresql
    fi
    have_postgres || { echo "PostgreSQL server binaries still missing after install" >&2; exit 1; }
    echo "installed PostgreSQL server"
fi

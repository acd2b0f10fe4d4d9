#!/usr/bin/env bash
# Make sure PostgreSQL server binaries exist under /usr/lib/postgresql/*/bin: the tests start
# throwaway servers from them (tests/support/postgres.py). Quiet when they are already there.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

have_postgres() {
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

# shellcheck source=apt-install.sh
source "$(dirname "$0")/apt-install.sh"

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

#!/usr/bin/env bash
# Make sure Debian's libfaketime is installed: `grassroots chaos` steps the services' wall clock
# back with it (LD_PRELOAD, shared/tools/chaos_faults.py). Quiet when it is already there.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

have_faketime() {
    compgen -G '/usr/lib/*/faketime/libfaketime.so.1' >/dev/null
}

# shellcheck source=apt-install.sh
source "$(dirname "$0")/apt-install.sh"

if ! have_faketime; then
    apt_install faketime
    have_faketime || { echo "libfaketime still missing after installing faketime" >&2; exit 1; }
    echo "installed libfaketime"
fi

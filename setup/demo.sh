#!/usr/bin/env bash
# The main job: the whole product against the local KSeF simulator (see README and tools/demo.py).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
# Odoo 18 at ODOO_PATH (default /opt/odoo): the whole product; without it, the protocol core alone.
bash "$ROOT/setup/odoo-tests.sh" --prepare-only >/dev/null || exit 1
python "$ROOT/tools/demo.py" "$@"

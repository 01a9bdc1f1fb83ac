#!/usr/bin/env bash
# The whole test suite: lint, type check, the core and simulator tests (pytest, real HTTP on loopback),
# the cross-addon tests in tests/, and the Odoo addons' tests when an Odoo 18 installation is found.
#
# Odoo is found at $ODOO_PATH (default /opt/odoo): a folder holding odoo-bin and the odoo package.
# Set ODOO_PATH=none to skip the Odoo tests on purpose. PostgreSQL is reached at $PGHOST:$PGPORT
# (default 127.0.0.1:5432) as $PGUSER (default ksefnet, created if missing; Odoo refuses the superuser).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"

status=0
lint_only=0
[ "${1:-}" = "--lint-only" ] && lint_only=1

echo "==> ruff (lint and format check)"
ruff check . || status=1
ruff format --check . || status=1
echo "==> mypy ksefnet_core"
mypy || status=1
[ $lint_only = 1 ] && exit $status

# The end-to-end tests in tests/ start Odoo themselves: its dependencies and database role come first.
bash "$ROOT/setup/odoo-tests.sh" --prepare-only || status=1
echo "==> pytest: ksefnet_core and tests/"
python -m pytest -q -p no:cacheprovider
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 5 ]; then status=1; fi

bash "$ROOT/setup/odoo-tests.sh" || status=1

if [ $status -ne 0 ]; then
  echo "==> FAILED (see above)"
else
  echo "==> all test stages passed"
fi
exit $status

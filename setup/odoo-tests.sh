#!/usr/bin/env bash
# Run the Odoo addons' tests on a fresh database, when an Odoo 18 installation is found.
#
# How Odoo is found: $ODOO_PATH (default /opt/odoo) must hold odoo-bin and the odoo package (an Odoo 18
# source checkout, or Odoo's official sources). Its addons folders are taken from $ODOO_ADDONS_PATH when
# set, else from the usual places inside it (odoo/addons, addons, and a top-level web/ if present).
# ODOO_PATH=none skips the Odoo tests on purpose. The database is created and dropped by this script.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"

ODOO_PATH="${ODOO_PATH:-/opt/odoo}"
# The addons tested: every folder of the repository holding an Odoo manifest (or KSEFNET_ODOO_ADDONS=a,b).
ADDONS="${KSEFNET_ODOO_ADDONS:-$(for m in "$ROOT"/*/__manifest__.py; do [ -f "$m" ] && basename "$(dirname "$m")"; done | paste -sd, -)}"
if [ -z "$ADDONS" ]; then
  echo "==> SKIPPED: Odoo addons' tests: no addon in the repository"
  exit 0
fi
if [ "$ODOO_PATH" = "none" ] || [ ! -f "$ODOO_PATH/odoo-bin" ] || [ ! -d "$ODOO_PATH/odoo" ]; then
  [ "${1:-}" = "--prepare-only" ] && exit 0
  echo "==> SKIPPED: Odoo addons' tests: no Odoo 18 installation at ODOO_PATH=$ODOO_PATH"
  echo "    (set ODOO_PATH to an Odoo 18 source folder holding odoo-bin to run them)"
  exit 0
fi

STAMP="$VENV/.ksefnet-odoo-installed"
if [ ! -f "$STAMP" ] || [ "$ROOT/setup/requirements-odoo.txt" -nt "$STAMP" ]; then
  echo "==> installing Odoo 18's Python dependencies into $VENV"
  python -m pip install -q -r "$ROOT/setup/requirements-odoo.txt" || exit 1
  touch "$STAMP"
fi

# The browser tours need Chromium (Debian's package): installed when missing, or said plainly that they skip.
if ! command -v chromium >/dev/null 2>&1 && ! command -v google-chrome >/dev/null 2>&1; then
  echo "==> installing Chromium for the browser tours (apt-get install chromium)"
  if ! { apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }; }; then
    echo "==> WARNING: Chromium could not be installed: the browser tours will be SKIPPED by Odoo"
  fi
fi

if [ -n "${ODOO_ADDONS_PATH:-}" ]; then
  addons_path="$ODOO_ADDONS_PATH"
else
  addons_path=""
  for d in "$ODOO_PATH/odoo/addons" "$ODOO_PATH/addons"; do
    [ -d "$d" ] && addons_path="${addons_path:+$addons_path,}$d"
  done
fi
addons_path="$addons_path,$ROOT"

export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-ksefnet}"
# Odoo refuses to run as the PostgreSQL superuser: make sure the (non-superuser) role exists, creating it
# through the superuser account ($PGSUPERUSER, default postgres) when it is missing.
if ! psql -d postgres -tAc "SELECT 1" >/dev/null 2>&1; then
  echo "==> creating PostgreSQL role $PGUSER (LOGIN CREATEDB)"
  psql -U "${PGSUPERUSER:-postgres}" -d postgres -c "CREATE ROLE \"$PGUSER\" LOGIN CREATEDB" >/dev/null || exit 1
fi
DB="ksefnet_test_$$_$(date +%s)"
LOG="$ROOT/var/odoo-tests.log"
mkdir -p "$ROOT/var"
port=$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# --prepare-only: Odoo's dependencies and the database role, for other tests that start Odoo (tests/).
[ "${1:-}" = "--prepare-only" ] && exit 0

tags=$(echo "$ADDONS" | sed 's/\([^,]*\)/\/\1/g')
echo "==> Odoo tests: $ADDONS on fresh database $DB (Odoo at $ODOO_PATH)"
python "$ODOO_PATH/odoo-bin" \
  --addons-path="$addons_path" -d "$DB" -i "$ADDONS" \
  --test-enable --test-tags="$tags" --stop-after-init --without-demo=all \
  --db_host="$PGHOST" --db_port="$PGPORT" --db_user="$PGUSER" \
  --data-dir="$ROOT/var/odoo-data" --http-interface=127.0.0.1 --http-port="$port" --log-level=test >"$LOG" 2>&1
rc=$?

# Odoo prints "N failed, M error(s) of T tests" per loading phase; failures also appear as ERROR/FAIL lines.
python - "$LOG" "$rc" <<'EOF'
import re, sys
log, rc = open(sys.argv[1], encoding="utf-8", errors="replace").read(), int(sys.argv[2])
runs = failed = 0
for m in re.finditer(r"(\d+) failed, (\d+) error\(s\) of (\d+) tests", log):
    failed += int(m.group(1)) + int(m.group(2))
    runs += int(m.group(3))
bad = [l for l in log.splitlines() if re.search(r" (ERROR|CRITICAL) ", l) or l.startswith(("FAIL:", "ERROR:"))]
for line in bad[:80]:
    print("   ", line[:400])
if runs == 0:
    print("    odoo: no test ran (see var/odoo-tests.log)")
    sys.exit(1)
print(f"odoo: {runs} tests, {failed} failures (subtests count one each)" if failed else f"odoo: {runs} passed, 0 failed")
sys.exit(1 if failed or bad or rc else 0)
EOF
result=$?
dropdb --if-exists "$DB" >/dev/null 2>&1 || psql -d postgres -c "DROP DATABASE IF EXISTS \"$DB\"" >/dev/null 2>&1
exit $result

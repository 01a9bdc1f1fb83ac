#!/usr/bin/env bash
# The main job: the protocol core end to end against the local KSeF simulator (see README).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
python -m ksefnet_core.demo "$@"

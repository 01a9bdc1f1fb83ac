#!/usr/bin/env bash
# Run the benchmarks (figures, not tests). Each prints its numbers and a ratio to a bare baseline.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
for b in benchmarks/bench_*.py; do
  echo "==> $b"
  python "$b"
done

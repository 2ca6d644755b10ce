#!/usr/bin/env bash
# Build the HTML documentation with the example gallery, offline, and fail on
# any warning. Run from anywhere; extra arguments go to sphinx, e.g.
#   bash doc/build.sh -D plot_gallery=0     # fast: skip running the examples
# Output: doc/_build/html/index.html
set -euo pipefail
cd "$(dirname "$0")/.."
export MPLBACKEND=Agg
exec python -m sphinx -W --keep-going -b html "$@" doc doc/_build/html

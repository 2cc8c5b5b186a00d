#!/usr/bin/env bash
# Installs prepbench from this offline bundle, with no network. Usage:
#   ./install.sh --stage STAGING_DIR PART ...     # as parts arrive, one transfer at a time: checked, moved, k/N
#   ./install.sh TARGET_DIR --from STAGING_DIR    # then install from the staged parts
#   ./install.sh TARGET_DIR [PART ...]
# The payload's parts are found beside this script or given as arguments, in any order (each is known by
# its checksum); every file is verified first. Needs python3 3.11+ (with venv); Java comes with a --minimal
# bundle, otherwise a Java 17 or 21 runtime is needed.
set -euo pipefail
exec python3 "$(cd "$(dirname "$0")" && pwd)/install.py" "$@"

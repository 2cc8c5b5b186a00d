#!/usr/bin/env bash
# Spark's GPU discovery script contract: print {"name": "gpu", "addresses": [...]} for this worker's GPUs.
# (Spark's own getGpusResources.sh is not in the PyPI package, so the suite ships this one.)
set -euo pipefail
addresses=$(nvidia-smi --query-gpu=index --format=csv,noheader | sed -e 's/^ *//' -e 's/.*/"&"/' | paste -sd, -)
echo "{\"name\": \"gpu\", \"addresses\": [${addresses}]}"

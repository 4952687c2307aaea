#!/usr/bin/env bash
# make policy: synthesize the dev and prod stacks and gate them with checkov (terraform_json).
# Exit 1 when a check fails that its resource does not skip with a reason, or a skip is stale.
# Extra arguments go to `python -m stacks.policy` (e.g. --no-synth, --report policy.md, prod).
set -euo pipefail
cd "$(dirname "$0")/.."
exec uv run --frozen python -m stacks.policy "$@"

#!/usr/bin/env bash
# make policy: gate the synthesized dev and prod stacks with checkov (terraform_json).
# Exit 1 when a check fails that its resource does not skip with a reason, or a skip is stale.
# Synthesizes first unless cdktf.out/ is newer than every input (so `make synth policy` does not
# synthesize twice). Extra arguments go to `python -m stacks.policy` (--report FILE, prod, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
newest="cdktf.out/stacks/prod/cdk.tf.json"
if [[ -f "${newest}" && -f cdktf.out/stacks/dev/cdk.tf.json ]] \
  && [[ -z "$(find stacks modules salesloop environments functions uv.lock cdktf.json \
               -newer "${newest}" -type f -print -quit 2>/dev/null)" ]]; then
  set -- --no-synth "$@"
fi
exec uv run --frozen python -m stacks.policy "$@"

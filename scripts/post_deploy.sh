#!/usr/bin/env bash
# Deploy steps that have no Terraform resource, run after `terraform apply` of ENV:
#   Vertex AI model monitoring of the forecast endpoint (SDK only; provider 8.7 has no resource).
# Usage: scripts/post_deploy.sh dev|prod
set -euo pipefail
cd "$(dirname "$0")/.."
env="${1:?usage: scripts/post_deploy.sh dev|prod}"
module="salesloop.vertex.model_monitoring"
if [[ -f "salesloop/vertex/model_monitoring.py" ]]; then
  uv run --frozen python -m "${module}" --env "${env}"
else
  # Not silent: CI shows this as a warning on the run until the SDK step lands.
  echo "::warning::${module} does not exist yet: Vertex AI model monitoring of ${env} is not configured"
fi

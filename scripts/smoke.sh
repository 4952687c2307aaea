#!/usr/bin/env bash
# Smoke test of a deployed environment: load a small batch into its sales table (one BigQuery
# load job) and wait until the on_sale function has recorded that job in processed_events, i.e.
# audit log → Eventarc → function → forecasts → ledger all worked. Needs gcloud's bq and uv.
# Usage: scripts/smoke.sh dev [timeout_seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
env="${1:?usage: scripts/smoke.sh dev|prod [timeout_seconds]}"
timeout_s="${2:-600}"
read -r project dataset sales ledger < <(uv run --frozen python -c "
from salesloop.config import load_settings
s = load_settings('${env}')
print(s.project, s.warehouse.dataset, s.table('sales'), s.table('processed_events'))
")
job_id="smoke_${GITHUB_RUN_ID:-local}_$(date +%s)"
rows="$(mktemp --suffix=.json)"
uv run --frozen python - "${job_id}" > "${rows}" <<'PY'
import datetime as dt, json, sys
job_id, today = sys.argv[1], dt.date.today()
now = dt.datetime.now(dt.timezone.utc).isoformat()
for i in range(28):  # four weeks of one smoke series: enough history for a forecast
    day = today - dt.timedelta(days=28 - i)
    print(json.dumps({
        "job_id": job_id, "row_num": i, "series_id": "SMOKE_1/SMOKE_ITEM",
        "store_id": "SMOKE_1", "item_id": "SMOKE_ITEM", "dept_id": "SMOKE", "cat_id": "SMOKE",
        "state_id": "SM", "date": day.isoformat(), "units": float(5 + i % 7), "inserted_at": now,
    }))
PY
echo "smoke: loading 28 rows into ${project}:${dataset}.${sales} as job ${job_id}"
bq --project_id="${project}" load --job_id="${job_id}" --source_format=NEWLINE_DELIMITED_JSON \
  "${dataset}.${sales}" "${rows}"
deadline=$(( $(date +%s) + timeout_s ))
while (( $(date +%s) < deadline )); do
  n="$(bq --project_id="${project}" query --nouse_legacy_sql --format=csv --quiet \
    "SELECT COUNT(*) FROM \`${project}.${dataset}.${ledger}\` WHERE job_name LIKE '%${job_id}%'" \
    | tail -n 1)"
  if [[ "${n}" =~ ^[0-9]+$ ]] && (( n > 0 )); then
    echo "smoke: job ${job_id} processed"
    exit 0
  fi
  sleep 20
done
echo "smoke: job ${job_id} not processed within ${timeout_s}s" >&2
exit 1

-- Drop alerts created since @since, sent or not (the report shows both, with their status).
SELECT alert_key, scope, subject_id, store_id, cat_id, rule, week_start, forecast_origin, baseline,
  forecast, drop_pct, model_version, recipients, status, created_at, sent_at
FROM {{ alerts }}
WHERE created_at >= @since
ORDER BY created_at, alert_key

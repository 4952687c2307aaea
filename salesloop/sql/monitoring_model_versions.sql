-- Every registered model version (the report's table and backtest chart).
SELECT version, status, model_kind, train_start, train_end, metrics, reason, created_at
FROM {{ model_versions }}
ORDER BY created_at, version

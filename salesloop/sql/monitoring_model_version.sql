-- A registered version: its training window (the drift baseline) and backtest metrics (JSON).
SELECT version, status, model_kind, train_start, train_end, metrics, reason, created_at
FROM {{ model_versions }}
WHERE version = @version

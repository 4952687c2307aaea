-- Every monitoring measurement since @since (the report's accuracy and drift over time).
SELECT run_id, computed_at, model_version, metric, scope, value, threshold, breached, window_start, window_end
FROM {{ monitoring_metrics }}
WHERE computed_at >= @since
ORDER BY computed_at, run_id, metric, scope

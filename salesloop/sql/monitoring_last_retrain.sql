-- Retraining triggers since @since (cooldown: one pipeline run at a time, not one per day).
SELECT run_id, computed_at, model_version
FROM {{ monitoring_metrics }}
WHERE metric = 'retrain_triggered' AND breached AND computed_at >= @since
ORDER BY computed_at DESC

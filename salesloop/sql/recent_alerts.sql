-- Alerts still inside their cooldown window, for dedup of new candidates.
SELECT * FROM {{ alerts }} WHERE created_at >= @since

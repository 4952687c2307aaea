-- The rows a monitoring run already recorded (a rerun for the same instant acts only once).
SELECT metric, scope FROM {{ monitoring_metrics }} WHERE run_id = @run_id

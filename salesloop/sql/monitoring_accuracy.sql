-- Accuracy of one model version's past forecasts against the actuals that arrived since, for the
-- forecasts whose target date lies in [@window_start, @window_end]: overall, per category, per store.
-- Actuals: the latest insert wins per (series, date), as in training_frame.sql (later jobs correct).
-- Every forecast row with an actual counts (all horizons, all origins); rows without one are not
-- judged yet.
--   wape     = SUM|y - yhat| / SUM|y|
--   bias     = SUM(yhat - y) / SUM(y)          (> 0: over-forecast)
--   coverage = share of actuals inside [lo, hi] (rows with a NULL bound are left out)
--   mase     = mean over series of  MEAN|y - yhat| / scale,  scale = mean |y_t - y_{t-@season_days}|
--              over the series' actuals in the @scale_days before its first evaluated origin (no
--              peeking, as in salesloop.model.metrics); series with scale 0 or none are left out.
--   scaled_bias = mean over series of MEAN(yhat - y) / scale: signed, defined where bias is not
--              (a closed store has SUM(y) = 0), ≈ +1 when the forecast runs one typical
--              seasonal change above the actuals.
WITH fc AS (
  SELECT series_id, store_id, cat_id, forecast_origin, target_date, yhat, lo_80, hi_80, lo_95, hi_95
  FROM {{ forecasts }}
  WHERE model_version = @model_version
    AND target_date >= @window_start AND target_date <= @window_end
),
first_origin AS (
  SELECT series_id, MIN(forecast_origin) AS scale_end FROM fc GROUP BY series_id
),
actuals AS (
  SELECT s.series_id, s.date, s.units
  FROM {{ sales }} AS s
  JOIN first_origin AS f ON s.series_id = f.series_id
  WHERE s.date > DATE_SUB(f.scale_end, INTERVAL @scale_days DAY) AND s.date <= @window_end
  QUALIFY ROW_NUMBER() OVER (PARTITION BY s.series_id, s.date ORDER BY s.inserted_at DESC, s.job_id DESC) = 1
),
history AS (
  SELECT a.series_id, a.date, a.units
  FROM actuals AS a JOIN first_origin AS f ON a.series_id = f.series_id
  WHERE a.date <= f.scale_end
),
scale AS (
  SELECT h.series_id, AVG(ABS(h.units - p.units)) AS mae_scale
  FROM history AS h
  JOIN history AS p ON p.series_id = h.series_id AND p.date = DATE_SUB(h.date, INTERVAL @season_days DAY)
  GROUP BY h.series_id
),
joined AS (
  SELECT
    fc.series_id, fc.store_id, fc.cat_id, fc.yhat, a.units AS y,
    CASE WHEN fc.lo_80 IS NULL OR fc.hi_80 IS NULL THEN NULL
         WHEN a.units >= fc.lo_80 AND a.units <= fc.hi_80 THEN 1.0 ELSE 0.0 END AS in_80,
    CASE WHEN fc.lo_95 IS NULL OR fc.hi_95 IS NULL THEN NULL
         WHEN a.units >= fc.lo_95 AND a.units <= fc.hi_95 THEN 1.0 ELSE 0.0 END AS in_95
  FROM fc JOIN actuals AS a ON a.series_id = fc.series_id AND a.date = fc.target_date
),
per_series AS (
  SELECT
    j.series_id, j.store_id, j.cat_id,
    SAFE_DIVIDE(AVG(ABS(j.y - j.yhat)), MAX(sc.mae_scale)) AS mase,
    SAFE_DIVIDE(AVG(j.yhat - j.y), MAX(sc.mae_scale)) AS scaled_bias
  FROM joined AS j JOIN scale AS sc ON sc.series_id = j.series_id
  WHERE sc.mae_scale > 0
  GROUP BY j.series_id, j.store_id, j.cat_id
),
scoped_rows AS (
  SELECT 'overall' AS scope, j.* FROM joined AS j
  UNION ALL SELECT CONCAT('cat:', j.cat_id) AS scope, j.* FROM joined AS j
  UNION ALL SELECT CONCAT('store:', j.store_id) AS scope, j.* FROM joined AS j
),
scoped_series AS (
  SELECT 'overall' AS scope, p.mase, p.scaled_bias FROM per_series AS p
  UNION ALL SELECT CONCAT('cat:', p.cat_id) AS scope, p.mase, p.scaled_bias FROM per_series AS p
  UNION ALL SELECT CONCAT('store:', p.store_id) AS scope, p.mase, p.scaled_bias FROM per_series AS p
),
row_metrics AS (
  SELECT
    scope,
    COUNT(*) AS n_forecasts,
    COUNT(DISTINCT series_id) AS n_series,
    SUM(y) AS actual_units,
    SAFE_DIVIDE(SUM(ABS(y - yhat)), SUM(ABS(y))) AS wape,
    SAFE_DIVIDE(SUM(yhat - y), SUM(y)) AS bias,
    AVG(in_80) AS coverage_80,
    AVG(in_95) AS coverage_95
  FROM scoped_rows
  GROUP BY scope
),
series_metrics AS (
  SELECT scope, AVG(mase) AS mase, AVG(scaled_bias) AS scaled_bias, COUNT(*) AS n_series_mase
  FROM scoped_series GROUP BY scope
)
SELECT
  r.scope, r.n_forecasts, r.n_series, r.actual_units, r.wape, r.bias, r.coverage_80, r.coverage_95,
  m.mase, m.scaled_bias, COALESCE(m.n_series_mase, 0) AS n_series_mase
FROM row_metrics AS r
LEFT JOIN series_metrics AS m ON m.scope = r.scope
ORDER BY r.scope

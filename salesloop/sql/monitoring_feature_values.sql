-- Model inputs of a date window as weighted values (value, count) for the drift distances: a window
-- of M5 size is millions of rows but a few thousand distinct values. Latest insert wins per
-- (series, date). Prices are rounded to cents; snap is a category ('true' | 'false', NULL missing).
WITH latest AS (
  SELECT units, sell_price, snap
  FROM {{ sales }}
  WHERE date >= @start_date AND date <= @end_date
  QUALIFY ROW_NUMBER() OVER (PARTITION BY series_id, date ORDER BY inserted_at DESC, job_id DESC) = 1
)
SELECT 'units' AS feature, units AS num_value, CAST(NULL AS STRING) AS cat_value, COUNT(*) AS n
FROM latest GROUP BY units
UNION ALL
SELECT 'sell_price' AS feature, ROUND(sell_price, 2) AS num_value, CAST(NULL AS STRING) AS cat_value, COUNT(*) AS n
FROM latest GROUP BY ROUND(sell_price, 2)
UNION ALL
SELECT 'snap' AS feature, CAST(NULL AS FLOAT64) AS num_value,
  CASE WHEN snap IS NULL THEN NULL WHEN snap THEN 'true' ELSE 'false' END AS cat_value, COUNT(*) AS n
FROM latest GROUP BY snap

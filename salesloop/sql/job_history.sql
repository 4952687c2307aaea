-- The recent history of every series an insert job touched, in one query.
-- A later job's row for the same (series, date) is a correction: the latest insert wins.
-- Two windows per series: the last @recent_days up to its origin (model input, trailing baseline)
-- and the same week one year (364 days) earlier (the alert rule's seasonal baseline).
WITH affected AS (
  SELECT DISTINCT series_id FROM {{ sales }} WHERE job_id = @job_id
),
origins AS (
  SELECT s.series_id, MAX(s.date) AS origin
  FROM {{ sales }} AS s JOIN affected AS a ON s.series_id = a.series_id
  GROUP BY s.series_id
)
SELECT
  s.series_id, s.store_id, s.item_id, s.dept_id, s.cat_id, s.state_id,
  s.date, s.units, s.sell_price, s.snap, s.event_name, o.origin
FROM {{ sales }} AS s
JOIN origins AS o ON s.series_id = o.series_id
WHERE s.date <= o.origin
  AND (
    s.date > DATE_SUB(o.origin, INTERVAL @recent_days DAY)
    OR (s.date > DATE_SUB(o.origin, INTERVAL 364 DAY) AND s.date <= DATE_SUB(o.origin, INTERVAL 357 DAY))
  )
QUALIFY ROW_NUMBER() OVER (PARTITION BY s.series_id, s.date ORDER BY s.inserted_at DESC, s.job_id DESC) = 1
ORDER BY s.series_id, s.date

-- The recent history of every series an insert job touched, its horizon's known calendar and the
-- delivery's ledger entry, in one query: one warehouse round trip per event (a BigQuery query
-- costs its fixed latency once, not twice).
-- A later job's row for the same (series, date) is a correction: the latest insert wins.
-- Two windows per series: the last @recent_days up to its origin (model input, trailing baseline)
-- and the same week one year (364 days) earlier (the alert rule's seasonal baseline).
-- part = 'history' marks those rows; part = 'calendar' rows are the calendar of the series' state
-- for the @horizon days after its origin (snap, event_name; units and statics NULL), as far as the
-- calendar table has them: the model's SNAP/event features for the days it forecasts.
-- part = 'ledger': one row (all else NULL) when processed_events already holds this delivery
-- (@event_id, @job_name): its effects are committed, it is a redelivery.
WITH affected AS (
  SELECT DISTINCT series_id FROM {{ sales }} WHERE job_id = @job_id
),
origins AS (
  SELECT s.series_id, MAX(s.date) AS origin, MAX(s.state_id) AS state_id
  FROM {{ sales }} AS s JOIN affected AS a ON s.series_id = a.series_id
  GROUP BY s.series_id
),
history AS (
  SELECT
    s.series_id, s.store_id, s.item_id, s.dept_id, s.cat_id, s.state_id,
    s.date, s.units, s.sell_price, s.snap, s.event_name, o.origin, 'history' AS part
  FROM {{ sales }} AS s
  JOIN origins AS o ON s.series_id = o.series_id
  WHERE s.date <= o.origin
    AND (
      s.date > DATE_SUB(o.origin, INTERVAL @recent_days DAY)
      OR (s.date > DATE_SUB(o.origin, INTERVAL 364 DAY) AND s.date <= DATE_SUB(o.origin, INTERVAL 357 DAY))
    )
  QUALIFY ROW_NUMBER() OVER (PARTITION BY s.series_id, s.date ORDER BY s.inserted_at DESC, s.job_id DESC) = 1
)
SELECT * FROM history
UNION ALL
SELECT
  o.series_id, CAST(NULL AS STRING), CAST(NULL AS STRING), CAST(NULL AS STRING),
  CAST(NULL AS STRING), o.state_id, c.date, CAST(NULL AS FLOAT64), CAST(NULL AS FLOAT64), c.snap,
  c.event_name, o.origin, 'calendar'
FROM origins AS o
JOIN {{ calendar }} AS c ON c.state_id = o.state_id
WHERE c.date > o.origin AND c.date <= DATE_ADD(o.origin, INTERVAL @horizon DAY)
UNION ALL
SELECT
  CAST(NULL AS STRING), CAST(NULL AS STRING), CAST(NULL AS STRING), CAST(NULL AS STRING),
  CAST(NULL AS STRING), CAST(NULL AS STRING), CAST(NULL AS DATE), CAST(NULL AS FLOAT64),
  CAST(NULL AS FLOAT64), CAST(NULL AS BOOL), CAST(NULL AS STRING), CAST(NULL AS DATE), 'ledger'
FROM {{ processed_events }}
WHERE event_id = @event_id AND job_name = @job_name
ORDER BY series_id, date

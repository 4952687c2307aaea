-- The training frame: daily sales per series over a history window, corrections applied.
SELECT series_id, store_id, item_id, dept_id, cat_id, state_id, date, units, sell_price, snap, event_name
FROM {{ sales }}
WHERE date > DATE_SUB(@end_date, INTERVAL @history_days DAY) AND date <= @end_date
QUALIFY ROW_NUMBER() OVER (PARTITION BY series_id, date ORDER BY inserted_at DESC, job_id DESC) = 1
ORDER BY series_id, date

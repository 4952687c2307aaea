-- One model version's point forecasts made at origins in [@start_date, @end_date], as weighted
-- values (yhat rounded to 0.01, count) for prediction drift.
SELECT ROUND(yhat, 2) AS num_value, COUNT(*) AS n
FROM {{ forecasts }}
WHERE model_version = @model_version
  AND forecast_origin >= @start_date AND forecast_origin <= @end_date
GROUP BY ROUND(yhat, 2)

-- The model version serving now: the one that wrote the most recent forecast.
SELECT model_version, MAX(created_at) AS last_forecast_at, MAX(forecast_origin) AS last_origin
FROM {{ forecasts }}
GROUP BY model_version
ORDER BY last_forecast_at DESC, model_version DESC
LIMIT 1

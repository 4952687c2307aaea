-- The forecasts an event wrote (for the charts of emails sent on a redelivery).
SELECT * FROM {{ forecasts }} WHERE job_id = @job_id ORDER BY series_id, horizon_day

-- Alerts an event raised whose email has not gone out yet (sent after the commit, retried on redelivery).
SELECT * FROM {{ alerts }} WHERE event_id = @event_id AND status = 'pending' ORDER BY alert_key

-- Has this delivery's effect already been committed? (the dedup ledger of at-least-once delivery)
SELECT event_id, job_name, processed_at
FROM {{ processed_events }}
WHERE event_id = @event_id AND job_name = @job_name

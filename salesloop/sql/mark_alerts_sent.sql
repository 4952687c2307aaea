UPDATE {{ alerts }}
SET status = 'sent', message_id = @message_id, sent_at = @sent_at
WHERE alert_key IN UNNEST(@alert_keys) AND status = 'pending'

-- Insert jobs that loaded sales rows dated in [@date_from, @date_to], with their full size and
-- commit time (what their audit-log event said), oldest first: the events a replay re-emits.
WITH jobs AS (
  SELECT DISTINCT job_id FROM {{ sales }} WHERE date >= @date_from AND date <= @date_to
)
SELECT s.job_id, COUNT(*) AS inserted_rows, MAX(s.inserted_at) AS committed_at
FROM {{ sales }} AS s JOIN jobs AS j ON s.job_id = j.job_id
GROUP BY s.job_id
ORDER BY committed_at, s.job_id

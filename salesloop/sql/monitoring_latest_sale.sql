-- The latest sales date in the warehouse (``--now data``: monitor as of the day after it).
SELECT MAX(date) AS latest FROM {{ sales }}

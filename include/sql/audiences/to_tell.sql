{{ eligible }}
SELECT e.account_id, e.email AS address
FROM eligible e
WHERE NOT EXISTS (SELECT 1 FROM governance.audience_notices n
                  WHERE n.account_id = e.account_id AND n.audience_id = %(audience)s)
  AND e.account_id <> ALL (%(skip)s::bigint[])
ORDER BY e.account_id
LIMIT %(limit)s

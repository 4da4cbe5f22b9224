COPY (
    {{ eligible }}
    SELECT governance.email_pseudonym(e.email) AS email
    FROM eligible e
    JOIN governance.audience_notices n
      ON n.account_id = e.account_id AND n.audience_id = %(audience)s
     AND n.notified_at <= %(told_before)s::timestamptz
    ORDER BY 1
) TO STDOUT WITH (FORMAT csv, HEADER true)

-- Rights check: nothing of an erased person is left (ERA-1, RET-7, RET-8), for every erasure at once.
-- requirements: ERA-1, RET-7, RET-8
-- on failure: list the records with this file's SQL as the auditor (ids only); a record the erasure missed goes with a new erasure request for the person, an address in another person's text by a rectification (REC-1); fix the data map first if it misses a way to the person
--
-- The people of every completed erasure and account deletion, as the ledger named them when the
-- erasure was planned (governance.erasure_subjects: account ids and e-mail pseudonyms, no address),
-- are looked for in every store of the data map, one pass per table (the person_traces marker, rendered
-- from the data map, keeps the rows carrying one of the identifiers in the CTE wanted): in every account column, in the address column by its pseudonym, and inside
-- every personal text column (an address written in a message body). Plain SQL, independent of the
-- erasure's code and selection. A record found is a finding unless:
--   - it is a RET-8 anonymised order record (left out by person_traces: its marker is set);
--   - it belongs to a category the person chose to keep when deleting the account (RET-7, choices);
--   - it was created after the request completed (its breach_clock): the person came back;
--   - it is a copy the request ledger still needs: the erasure's own request, or an open request;
--   - a legal hold in force at now keeps it (RET-8): a person hold on any of the person's
--     identifiers, a record hold on it, or a rule hold on a rule of its table.
-- record_id: '<request id>:<table>:<record key>' (keys, no personal data).
WITH erased AS (
    SELECT r.request_id, r.closed_at, s.account_ids, s.email_sha256s,
           ARRAY(SELECT c.key FROM jsonb_each_text(r.choices) AS c WHERE c.value = 'keep') AS kept
    FROM governance.subject_requests r
    JOIN governance.erasure_subjects s ON s.request_id = r.request_id
    WHERE r.kind IN ('erasure', 'account_deletion') AND r.state = 'completed'
      AND r.closed_at <= %(now)s::timestamptz
),
identifiers AS (
    SELECT e.request_id, 'account:' || a.id AS identifier FROM erased e CROSS JOIN unnest(e.account_ids) AS a(id)
    UNION
    SELECT e.request_id, 'email:' || p.id FROM erased e CROSS JOIN unnest(e.email_sha256s) AS p(id)
),
holds AS (
    SELECT * FROM governance.holds_at(%(now)s::timestamptz)
),
held_people AS (
    SELECT DISTINCT i.request_id
    FROM identifiers i JOIN holds h ON h.scope = 'person'
     AND (i.identifier = 'account:' || h.account_id OR i.identifier = 'email:' || h.email_sha256)
),
wanted AS (
    SELECT coalesce(array_agg(DISTINCT a.id), '{}') AS accounts, coalesce(array_agg(DISTINCT p.id), '{}') AS emails,
           count(a.id) + count(p.id) > 0 AS any
    FROM erased e
    LEFT JOIN LATERAL unnest(e.account_ids) AS a(id) ON true
    LEFT JOIN LATERAL unnest(e.email_sha256s) AS p(id) ON true
),
traces (table_name, category, record_key, placed_at, request_id, rules, identifiers) AS (
{{ person_traces }}
)
SELECT DISTINCT 'erased-persons-left' AS check_id,
       e.request_id || ':' || t.table_name || ':' || t.record_key AS record_id
FROM traces t
CROSS JOIN LATERAL unnest(t.identifiers) AS u(identifier)
JOIN identifiers i ON i.identifier = u.identifier
JOIN erased e ON e.request_id = i.request_id
WHERE NOT t.category = ANY(e.kept)
  AND (t.placed_at IS NULL OR t.placed_at <= e.closed_at)
  AND NOT (t.request_id IS NOT NULL AND (t.request_id = e.request_id OR EXISTS (
        SELECT 1 FROM governance.subject_requests o
        WHERE o.request_id = t.request_id AND o.state NOT IN ('completed', 'refused', 'withdrawn'))))
  AND e.request_id NOT IN (SELECT request_id FROM held_people)
  AND NOT EXISTS (
        SELECT 1 FROM holds h
        WHERE (h.scope = 'record' AND h.table_name = t.table_name AND h.record_key = t.record_key)
           OR (h.scope = 'rule' AND h.rule_id = ANY(t.rules)))

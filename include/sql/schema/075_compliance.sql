-- The compliance view and report (#13) read the evidence by kind and rule: the latest sweep summary
-- and audit of each rule, and a period's entries of one kind. One index serves both, so the page
-- costs time in proportion to the rules and the period, not to the whole log (1,000,000 entries).
CREATE INDEX IF NOT EXISTS evidence_kind_rule_idx ON governance.evidence (kind, rule_id, entry_id);
CREATE INDEX IF NOT EXISTS evidence_kind_recorded_idx ON governance.evidence (kind, recorded_at);

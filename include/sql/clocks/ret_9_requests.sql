-- RET-9 (CAT-7): the answer address of a data-subject request (REQ-1) is kept while the request is
-- open and for a window after it closed (completed, refused or withdrawn: follow-up questions on
-- the answer). An open request has no clock and never expires under RET-9.
CREATE OR REPLACE VIEW governance_clocks.ret_9_request_contacts AS
    SELECT c.request_id AS record_id, r.closed_at AS clock
    FROM governance.request_contacts c
    JOIN governance.subject_requests r ON r.request_id = c.request_id
    WHERE r.closed_at IS NOT NULL;

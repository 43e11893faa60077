-- offboard schema version 7 (PostgreSQL): vendor request budgets shared by a fleet of engines
-- (offboard_store::PostgresRateBudget).
--
-- rate_budget: one GCRA state per budget key (`tenant|bucket`): the theoretical arrival time
-- of the next request, a block set after a vendor's Retry-After, and the id of the last grant
-- (so the one statement that advances the state can say whether it granted).
CREATE TABLE offboard.rate_budget (
    key           text        PRIMARY KEY,
    tat           timestamptz NOT NULL,
    blocked_until timestamptz NOT NULL DEFAULT '-infinity',
    last_grant    uuid
);

-- rate_budget_slot: leases of a shared concurrency limit (Okta's per-org concurrency), one row
-- per slot; a slot is free when its lease expired (a crashed holder frees it by expiry).
CREATE TABLE offboard.rate_budget_slot (
    key    text        NOT NULL,
    slot   integer     NOT NULL,
    holder uuid        NOT NULL,
    until  timestamptz NOT NULL,
    PRIMARY KEY (key, slot)
);

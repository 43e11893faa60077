-- offboard schema version 4 (SQLite): delegates' durable records (Store::get_record,
-- insert_record, swap_record), e.g. the email delegate's tasks, so that a restart re-sends
-- nothing. A JSON value per (namespace, key) with a version for compare-and-swap.
CREATE TABLE offboard_records (
    namespace TEXT NOT NULL,
    key       TEXT NOT NULL,
    version   INTEGER NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (namespace, key)
);

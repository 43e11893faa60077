//! The SQL of each dialect, one file per statement under `queries/<dialect>/` (STYLE §8).

macro_rules! queries {
    ($dialect:literal: $($name:ident = $file:literal),* $(,)?) => {
        $(
            #[doc = concat!("`queries/", $dialect, "/", $file, ".sql`")]
            pub(crate) const $name: &str =
                include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/queries/", $dialect, "/", $file, ".sql"));
        )*
    };
}

/// SQLite statements.
pub(crate) mod sqlite {
    queries!("sqlite":
        RUN_INSERT = "run_insert", TASK_INSERT = "task_insert", TASK_UPSERT = "task_upsert",
        TASK_UPDATE_LEASED = "task_update_leased", RUNS_LOAD_WITH_TASKS = "runs_load_with_tasks",
        RUN_UPDATE = "run_update", RUN_UPDATE_COLUMNS = "run_update_columns",
        LEASE_HELD = "lease_held", LEASE_CLEAR = "lease_clear",
        RELEASE = "release", RENEW = "renew", CLAIM = "claim", AUDIT_HEAD = "audit_head",
        AUDIT_HEAD_SET = "audit_head_set", AUDIT_INSERT = "audit_insert",
        AUDIT_ALL = "audit_all", AUDIT_VERIFY = "audit_verify", AUDIT_RUN = "audit_run",
        LIST_RUNS = "list_runs",
        LIST_RUNS_PERSON = "list_runs_person", LIST_RUNS_OPEN = "list_runs_open",
        RUNS_PAGE = "runs_page", SNAPSHOT_PUT = "snapshot_put", SNAPSHOT_GET = "snapshot_get",
        ACCOUNT_UPSERT = "account_upsert", ACCOUNTS_GET = "accounts_get",
        CURSOR_GET = "cursor_get", CURSOR_PUT = "cursor_put", SCHEMA_TABLES = "schema_tables",
        SCHEMA_VERSION = "schema_version", CHECKPOINT = "checkpoint",
        SAVEPOINT = "savepoint", SAVEPOINT_RELEASE = "savepoint_release",
        SAVEPOINT_ROLLBACK = "savepoint_rollback", TASK_CLAIM_WITH_COMMIT = "task_claim_with_commit",
    );
    /// `migrations/sqlite/0001_init.sql`
    pub(crate) const MIGRATION_0001: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/migrations/sqlite/0001_init.sql"
    ));
    /// `migrations/sqlite/0002_open_runs.sql`
    pub(crate) const MIGRATION_0002: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/migrations/sqlite/0002_open_runs.sql"
    ));
    /// `migrations/sqlite/0003_one_open_run.sql`
    pub(crate) const MIGRATION_0003: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/migrations/sqlite/0003_one_open_run.sql"
    ));
    /// `migrations/sqlite/0004_records.sql`
    pub(crate) const MIGRATION_0004: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/migrations/sqlite/0004_records.sql"
    ));
    /// `migrations/sqlite/0005_personal.sql`
    pub(crate) const MIGRATION_0005: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/migrations/sqlite/0005_personal.sql"
    ));
    // Delegates' records (`Store::get_record`, `insert_record`, `swap_record`).
    queries!("sqlite":
        RECORD_GET = "record_get", RECORD_INSERT = "record_insert", RECORD_SWAP = "record_swap",
    );
    // Personal values beside the audit trail, and erasure (`Store::erase_person`,
    // `Store::erase_snapshots`).
    queries!("sqlite":
        AUDIT_PERSONAL_INSERT = "audit_personal_insert",
        ERASE_RUN = "erase_run", ERASE_TASK = "erase_task", ERASE_RUNS_LEFT = "erase_runs_left",
        ERASE_PERSONAL_RUN = "erase_personal_run", ERASE_PERSONAL_PERSON = "erase_personal_person",
        ERASE_SNAPSHOT = "erase_snapshot", ERASE_ACCOUNTS = "erase_accounts",
        ERASE_RECORD = "erase_record", REDACT_RECORD = "redact_record", RECORDS_ALL = "records_all",
        ERASE_SNAPSHOTS_BEFORE = "erase_snapshots_before",
    );
}

/// PostgreSQL statements.
#[cfg(feature = "postgres")]
pub(crate) mod postgres {
    queries!("postgres":
        RUN_INSERT = "run_insert", TASK_INSERT = "task_insert", TASK_UPSERT = "task_upsert",
        RUN_UPDATE = "run_update", RUNS_LOAD = "runs_load", RUNS_TASKS_LOAD = "runs_tasks_load",
        RUN_VERSION = "run_version", LEASE_HELD = "lease_held", LEASE_CLEAR = "lease_clear",
        RELEASE = "release", RENEW = "renew", CLAIM = "claim", AUDIT_HEAD = "audit_head",
        AUDIT_HEAD_READ = "audit_head_read",
        AUDIT_INSERT = "audit_insert",
        AUDIT_ALL = "audit_all", AUDIT_VERIFY = "audit_verify", AUDIT_RUN = "audit_run",
        LIST_RUNS = "list_runs",
        LIST_RUNS_PERSON = "list_runs_person", LIST_RUNS_OPEN = "list_runs_open",
        RUNS_PAGE = "runs_page", SNAPSHOT_PUT = "snapshot_put", SNAPSHOT_GET = "snapshot_get",
        ACCOUNT_UPSERT = "account_upsert", ACCOUNTS_GET = "accounts_get",
        CURSOR_GET = "cursor_get", CURSOR_PUT = "cursor_put", SCHEMA_TABLES = "schema_tables",
        SCHEMA_VERSION = "schema_version", TASK_CLAIM_WITH_COMMIT = "task_claim_with_commit",
        TASK_UPDATE_LEASED = "task_update_leased",
    );
    /// `migrations/postgres/0001_init.sql`
    pub(crate) const MIGRATION_0001: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/migrations/postgres/0001_init.sql"
    ));
    /// `migrations/postgres/0002_open_runs.sql`
    pub(crate) const MIGRATION_0002: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/migrations/postgres/0002_open_runs.sql"
    ));
    /// `migrations/postgres/0003_one_open_run.sql`
    pub(crate) const MIGRATION_0003: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/migrations/postgres/0003_one_open_run.sql"
    ));
    /// `migrations/postgres/0004_records.sql`
    pub(crate) const MIGRATION_0004: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/migrations/postgres/0004_records.sql"
    ));
    /// `migrations/postgres/0005_no_truncate.sql`
    pub(crate) const MIGRATION_0005: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/migrations/postgres/0005_no_truncate.sql"
    ));
    /// `migrations/postgres/0006_personal.sql`
    pub(crate) const MIGRATION_0006: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/migrations/postgres/0006_personal.sql"
    ));
    /// `migrations/postgres/0007_rate_budget.sql`
    pub(crate) const MIGRATION_0007: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/migrations/postgres/0007_rate_budget.sql"
    ));
    // Delegates' records (`Store::get_record`, `insert_record`, `swap_record`).
    queries!("postgres":
        RECORD_GET = "record_get", RECORD_INSERT = "record_insert", RECORD_SWAP = "record_swap",
    );
    // Personal values beside the audit trail, and erasure (`Store::erase_person`,
    // `Store::erase_snapshots`).
    queries!("postgres":
        AUDIT_PERSONAL_INSERT = "audit_personal_insert", ERASE_RUNS_OF = "erase_runs_of",
        ERASE_RUN = "erase_run", ERASE_TASK = "erase_task", ERASE_BEGIN = "erase_begin",
        ERASE_PERSONAL = "erase_personal", ERASE_SNAPSHOT = "erase_snapshot",
        ERASE_ACCOUNTS = "erase_accounts", ERASE_RECORD = "erase_record",
        REDACT_RECORD = "redact_record", RECORDS_ALL = "records_all", ERASE_SNAPSHOTS_BEFORE = "erase_snapshots_before",
    );
}

//! [`ScratchDatabase`]: a PostgreSQL database of its own for one test or measurement.

use sqlx::{Connection, PgConnection};

/// A database created on a PostgreSQL server for one test or measurement, so several run at
/// once without seeing each other's rows; [`ScratchDatabase::drop_database`] removes it.
#[derive(Debug)]
pub struct ScratchDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl ScratchDatabase {
    /// The test command's server: `OFFBOARD_TEST_PG_URL` (set by `./scripts/test`).
    ///
    /// # Panics
    /// When it is not set, naming how to get one: tests that need PostgreSQL fail loudly.
    pub fn test_server() -> String {
        std::env::var("OFFBOARD_TEST_PG_URL").unwrap_or_else(|_| {
            panic!(
                "OFFBOARD_TEST_PG_URL is not set: run ./scripts/test, which starts PostgreSQL \
                 and sets it (or point it at a PostgreSQL database you may create databases in)"
            )
        })
    }

    /// Creates `<prefix>_<random>` on the server `admin_url` connects to (as a role that may
    /// create databases).
    ///
    /// # Errors
    /// When the server cannot be reached or refuses.
    pub async fn create(admin_url: &str, prefix: &str) -> Result<Self, sqlx::Error> {
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(admin_url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        // The same server and options, the new database.
        let (base, query) = match admin_url.split_once('?') {
            Some((b, q)) => (b, format!("?{q}")),
            None => (admin_url, String::new()),
        };
        let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
        let url = format!("{base}/{name}{query}");
        Ok(Self {
            admin_url: admin_url.to_owned(),
            name,
            url,
        })
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drops it (connections to it are closed first); nothing if the server is unreachable.
    pub async fn drop_database(self) {
        if let Ok(mut admin) = PgConnection::connect(&self.admin_url).await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .execute(&mut admin)
            .await;
        }
    }
}

//! [`PostgresRateBudget`]: one vendor budget shared by every engine process on a database.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use offboard_core::budget::{ConcurrencyPermit, Quota, RateBudget, cost_steps};
use offboard_core::{Error, ErrorKind, Result};
use sqlx::postgres::PgPool;
use tokio::time::Instant;
use uuid::Uuid;

use crate::PostgresStore;
use crate::codec::db;

/// Spends `cost` of a key's GCRA budget if it fits, in one statement on the database's clock.
/// `$1` key, `$2` cost × emission and `$3` the tolerance (both in microseconds), `$4` this
/// grant's id. Returns whether it granted, and the TAT and block relative to `now()` (µs).
const ACQUIRE: &str = "\
INSERT INTO offboard.rate_budget AS b (key, tat, blocked_until, last_grant)
VALUES ($1, now() + $2::float8 * interval '1 microsecond', '-infinity', $4)
ON CONFLICT (key) DO UPDATE SET
    tat = CASE WHEN b.blocked_until <= now()
                AND greatest(b.tat, now()) + $2::float8 * interval '1 microsecond'
                    <= now() + $3::float8 * interval '1 microsecond'
          THEN greatest(b.tat, now()) + $2::float8 * interval '1 microsecond'
          ELSE b.tat END,
    last_grant = CASE WHEN b.blocked_until <= now()
                AND greatest(b.tat, now()) + $2::float8 * interval '1 microsecond'
                    <= now() + $3::float8 * interval '1 microsecond'
          THEN $4 ELSE b.last_grant END
RETURNING coalesce(last_grant = $4, false),
    (extract(epoch FROM (tat - now())) * 1e6)::float8,
    (extract(epoch FROM (greatest(blocked_until, now()) - now())) * 1e6)::float8";

/// Blocks a key until `now()` + `$2` µs (a longer block stays).
const PENALISE: &str = "\
INSERT INTO offboard.rate_budget AS b (key, tat, blocked_until)
VALUES ($1, now(), now() + $2::float8 * interval '1 microsecond')
ON CONFLICT (key) DO UPDATE SET blocked_until = greatest(b.blocked_until, excluded.blocked_until)";

/// Takes one free slot of `$3` for holder `$2`, leased for `$4` µs; no row when all are held.
const SLOT_TAKE: &str = "\
INSERT INTO offboard.rate_budget_slot AS s (key, slot, holder, until)
SELECT $1, n, $2, now() + $4::float8 * interval '1 microsecond'
FROM generate_series(0, $3 - 1) AS n
WHERE NOT EXISTS (
    SELECT 1 FROM offboard.rate_budget_slot t WHERE t.key = $1 AND t.slot = n AND t.until > now())
ORDER BY random() LIMIT 1
ON CONFLICT (key, slot) DO UPDATE SET holder = excluded.holder, until = excluded.until
    WHERE s.until <= now()
RETURNING slot";

/// Frees a slot this holder still holds.
const SLOT_FREE: &str =
    "DELETE FROM offboard.rate_budget_slot WHERE key = $1 AND slot = $2 AND holder = $3";

/// How a [`PostgresRateBudget`] trades round trips for precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetTuning {
    /// Permits taken beyond a request's own per round trip and kept locally (default 4; at
    /// most the quota's burst less the cost).
    pub reserve: u32,
    /// How long a reserved permit may be used after it was taken (default 250 ms); unused, it
    /// lapses (it was counted, so a lapse only under-spends).
    pub reserve_for: Duration,
    /// The lease of a concurrency slot (default 90 s, above any request's timeout): a crashed
    /// holder's slot is free again after it.
    pub slot_lease: Duration,
    /// The first wait before asking again for a slot when all are held (doubles to 200 ms).
    pub slot_poll: Duration,
}

impl Default for BudgetTuning {
    fn default() -> Self {
        Self {
            reserve: 4,
            reserve_for: Duration::from_millis(250),
            slot_lease: Duration::from_secs(90),
            slot_poll: Duration::from_millis(10),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Reserve {
    permits: u32,
    until: Instant,
}

/// A [`RateBudget`] on PostgreSQL, shared by every engine process on one database, so that a
/// fleet spends each vendor's budget once.
///
/// # Behavior
/// - Each key is one row of `offboard.rate_budget`: its GCRA state (TAT) and a block. A
///   request's turn is taken with ONE statement (`INSERT … ON CONFLICT DO UPDATE … RETURNING`)
///   on the database's clock (`now()`), which either spends the cost or leaves the row as it
///   was and says how long to wait; concurrent statements on one key serialise on its row.
/// - Local reserve: a round trip takes up to [`BudgetTuning::reserve`] permits more than it
///   needs (never more than the quota's burst), kept in this process for
///   [`BudgetTuning::reserve_for`], so most requests do not wait on the database. A reserved
///   permit is spent in the shared state when it is taken and may be sent up to
///   `reserve_for` later, so keys with a reserve are paced to the limit less the permits of
///   `reserve_for` (plus one): in any span of `per` the fleet sends at most `limit` (Okta's
///   600 a minute paces to 596). Where that would cost more than a tenth of the limit, no
///   reserve is taken.
/// - [`RateBudget::penalise`] sets the key's block (the longer one wins) for every process,
///   and drops this process's reserve of the key.
/// - Concurrency: leases in `offboard.rate_budget_slot`, one row per slot, taken with one
///   statement and freed when the permit drops; a crashed holder's slot frees itself when its
///   lease ([`BudgetTuning::slot_lease`]) ends. Leases rather than advisory locks: an advisory
///   lock is held by a session, so every request in flight would pin a pooled connection for
///   its whole duration (75 for a large Okta org, per process); a lease costs one short
///   statement each way and no connection while held. The price is that a killed process's
///   slots stay taken until their lease ends.
/// - Storage errors are retryable `Unavailable` errors: the request is not sent.
#[derive(Clone)]
pub struct PostgresRateBudget {
    pool: PgPool,
    tuning: BudgetTuning,
    reserves: Arc<Mutex<HashMap<String, Reserve>>>,
}

impl fmt::Debug for PostgresRateBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresRateBudget")
            .field("tuning", &self.tuning)
            .finish_non_exhaustive()
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn unavailable(op: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| {
        let mut err = db(op)(e);
        if err.kind() == ErrorKind::Storage {
            err = Error::new(ErrorKind::Unavailable, err.message().to_owned())
                .with_operation(op.to_owned())
                .retryable();
        }
        err
    }
}

impl PostgresRateBudget {
    /// The budget on the store's database (its pool; the store's migrations made the tables).
    pub fn new(store: &PostgresStore) -> Self {
        Self::from_pool(store.pool().clone())
    }

    /// The budget on a pool whose database [`PostgresStore`] migrated (schema version 7 or
    /// later).
    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            pool,
            tuning: BudgetTuning::default(),
            reserves: Arc::default(),
        }
    }

    /// Sets the tuning.
    pub fn with_tuning(mut self, tuning: BudgetTuning) -> Self {
        self.tuning = tuning;
        self
    }

    /// Takes `cost` from the local reserve of `key` if it holds that many, unexpired.
    fn take_reserved(&self, key: &str, cost: u32) -> bool {
        let now = Instant::now();
        let mut reserves = self.reserves.lock().unwrap_or_else(PoisonError::into_inner);
        match reserves.get_mut(key) {
            Some(r) if r.until > now && r.permits >= cost => {
                r.permits -= cost;
                true
            }
            _ => false,
        }
    }

    /// Keeps `permits` just granted beyond a request's cost: added to the unexpired permits
    /// held, which keep their (earlier) expiry, so no permit is sent later than
    /// `reserve_for` after it was granted; a lapsed reserve is replaced.
    fn keep_reserve(&self, key: &str, permits: u32) {
        let now = Instant::now();
        let mut reserves = self.reserves.lock().unwrap_or_else(PoisonError::into_inner);
        match reserves.get_mut(key) {
            Some(r) if r.until > now => r.permits += permits,
            _ => {
                let until = now + self.tuning.reserve_for;
                reserves.insert(key.to_owned(), Reserve { permits, until });
            }
        }
    }

    /// The reserve a round trip takes beyond `cost`, and the quota it is taken under: the
    /// quota's limit less the permits `reserve_for` lets a reserved permit be late by, so the
    /// requests sent in any span of `per` stay within the limit. No reserve where that would
    /// cost more than a tenth of the limit.
    fn reserve_plan(&self, quota: &Quota, cost: u32) -> (u32, Quota) {
        let extra = self.tuning.reserve.min(quota.burst().saturating_sub(cost));
        if extra == 0 {
            return (0, *quota);
        }
        let late = (self.tuning.reserve_for.as_secs_f64() / quota.emission().as_secs_f64()).ceil();
        let late = late as u32 + 1;
        match Quota::per(quota.limit().saturating_sub(late), quota.window()) {
            Some(q) if late * 10 <= quota.limit() => (extra, q.with_burst(quota.burst())),
            _ => (0, *quota),
        }
    }

    /// Spends `cost` (plus a reserve, if it fits too) or says how long to wait: one round trip,
    /// two when the reserve does not fit but the cost alone might.
    async fn spend(&self, key: &str, quota: &Quota, cost: u32) -> Result<Option<Duration>> {
        let (extra, quota) = self.reserve_plan(quota, cost);
        let quota = &quota;
        let mut take = cost + extra;
        loop {
            let (granted, tat, blocked): (bool, f64, f64) = sqlx::query_as(ACQUIRE)
                .bind(key)
                .bind(micros(quota.emission() * take))
                .bind(micros(quota.tolerance()))
                .bind(Uuid::new_v4())
                .fetch_one(&self.pool)
                .await
                .map_err(unavailable("budget.acquire"))?;
            if granted {
                if take > cost {
                    self.keep_reserve(key, take - cost);
                }
                return Ok(None);
            }
            if blocked > 0.0 {
                return Ok(Some(Duration::from_secs_f64(blocked / 1e6)));
            }
            if take == cost {
                // The TAT was left as it was: the cost fits once TAT + cost − tolerance is
                // reached.
                let wait = tat + micros(quota.emission() * cost) - micros(quota.tolerance());
                return Ok(Some(Duration::from_secs_f64(wait.max(1000.0) / 1e6)));
            }
            take = cost;
        }
    }
}

#[async_trait]
impl RateBudget for PostgresRateBudget {
    async fn acquire(&self, key: &str, quota: &Quota, cost: u32) -> Result<()> {
        for step in cost_steps(quota, cost) {
            // After each wait too: under a spent budget every request of the process is a
            // waiter, and the reserve one of them took is theirs to spend before it lapses.
            while !self.take_reserved(key, step) {
                match self.spend(key, quota, step).await? {
                    None => break,
                    Some(wait) => tokio::time::sleep(wait).await,
                }
            }
        }
        Ok(())
    }

    async fn penalise(&self, key: &str, wait: Duration) -> Result<()> {
        self.reserves
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
        sqlx::query(PENALISE)
            .bind(key)
            .bind(micros(wait))
            .execute(&self.pool)
            .await
            .map_err(unavailable("budget.penalise"))?;
        Ok(())
    }

    async fn concurrency(&self, key: &str, limit: usize) -> Result<ConcurrencyPermit> {
        let limit = i32::try_from(limit.max(1)).unwrap_or(i32::MAX);
        let holder = Uuid::new_v4();
        let mut poll = self.tuning.slot_poll;
        loop {
            let slot: Option<i32> = sqlx::query_scalar(SLOT_TAKE)
                .bind(key)
                .bind(holder)
                .bind(limit)
                .bind(micros(self.tuning.slot_lease))
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable("budget.concurrency"))?;
            if let Some(slot) = slot {
                return Ok(ConcurrencyPermit::new(Slot {
                    pool: self.pool.clone(),
                    key: key.to_owned(),
                    slot,
                    holder,
                }));
            }
            tokio::time::sleep(poll).await;
            poll = (poll * 2).min(Duration::from_millis(200));
        }
    }
}

/// A held concurrency slot; freed (in the background) when dropped.
struct Slot {
    pool: PgPool,
    key: String,
    slot: i32,
    holder: Uuid,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime left (shutdown): the lease frees the slot when it ends.
            return;
        };
        let pool = self.pool.clone();
        let key = std::mem::take(&mut self.key);
        let (slot, holder) = (self.slot, self.holder);
        runtime.spawn(async move {
            if let Err(e) = sqlx::query(SLOT_FREE)
                .bind(&key)
                .bind(slot)
                .bind(holder)
                .execute(&pool)
                .await
            {
                tracing::warn!(error = %e, "freeing a concurrency slot failed; its lease will end");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use offboard_testkit::suite::postgres::ScratchDatabase;

    async fn budget() -> (ScratchDatabase, PostgresRateBudget) {
        let db = ScratchDatabase::create(&ScratchDatabase::test_server(), "offboard_rb")
            .await
            .expect("a database on OFFBOARD_TEST_PG_URL");
        let store = PostgresStore::connect(db.url()).await.unwrap();
        // Reserved permits may be a second late: 600 a minute is paced to 589.
        let budget = PostgresRateBudget::new(&store).with_tuning(BudgetTuning {
            reserve_for: Duration::from_secs(1),
            ..BudgetTuning::default()
        });
        (db, budget)
    }

    fn reserved(budget: &PostgresRateBudget, key: &str) -> Option<u32> {
        let reserves = budget.reserves.lock().unwrap();
        reserves.get(key).map(|r| r.permits)
    }

    fn hold(budget: &PostgresRateBudget, key: &str, permits: u32) {
        budget.reserves.lock().unwrap().insert(
            key.to_owned(),
            Reserve {
                permits,
                until: Instant::now() + Duration::from_secs(30),
            },
        );
    }

    /// A request that waited for its turn takes it from the reserve its process took in the
    /// meantime, not from the database: under a spent budget every request of a process is a
    /// waiter, and a reserve only newcomers spend lapses unused (measured: a fleet used 82 %
    /// of Google's quota).
    #[tokio::test]
    async fn a_waiter_spends_the_reserve_its_process_took_while_it_waited() {
        let (db, budget) = budget().await;
        let quota = Quota::per(600, Duration::from_secs(60)).unwrap();
        budget
            .penalise("k", Duration::from_millis(300))
            .await
            .unwrap();
        let waiter = tokio::spawn({
            let budget = budget.clone();
            async move { budget.acquire("k", &quota, 1).await }
        });
        // The waiter asked and sleeps; the process comes to hold a reserve of 4.
        tokio::time::sleep(Duration::from_millis(50)).await;
        hold(&budget, "k", 4);
        waiter.await.unwrap().unwrap();
        assert_eq!(
            reserved(&budget, "k"),
            Some(3),
            "the waiter went to the database"
        );
        db.drop_database().await;
    }

    /// A key whose first row came from a penalty (a 429 on a bucket no request had drawn from
    /// yet, such as an Okta family whose budget was not learnt) makes a request wait out the
    /// block: it was an `Unavailable` error (the row's grant mark was NULL) until it ended.
    #[tokio::test]
    async fn a_key_penalised_before_any_grant_is_waited_for() {
        let (db, budget) = budget().await;
        let quota = Quota::per(600, Duration::from_secs(60)).unwrap();
        budget
            .penalise("fresh", Duration::from_millis(200))
            .await
            .unwrap();
        let started = Instant::now();
        budget.acquire("fresh", &quota, 1).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(150));
        db.drop_database().await;
    }

    /// A grant's reserve adds to the permits the process still holds (expiring with the
    /// older ones), instead of replacing them.
    #[tokio::test]
    async fn a_new_reserve_adds_to_the_one_held() {
        let (db, budget) = budget().await;
        let quota = Quota::per(600, Duration::from_secs(60)).unwrap();
        hold(&budget, "k", 1);
        // Two do not fit in the one held: a round trip takes 2 and a reserve of 4.
        budget.acquire("k", &quota, 2).await.unwrap();
        assert_eq!(
            reserved(&budget, "k"),
            Some(5),
            "the permit held was dropped"
        );
        db.drop_database().await;
    }
}

//! The fleet's store: a PostgreSQL database that many workers share (`download --db URL --fleet NAME`). It
//! holds every clip's lease, the settings pinned for the fleet and one breaker per throttle domain. The
//! SQL text lives in `schema.sql`, `migrate_*.sql` and `statements.sql` beside this file; the run loop
//! reaches it through the store seam (`download/store.rs`), implemented over it in `download/fleet/`.

mod db;
mod history;
mod lease;
mod pin;
mod record;
mod seed;
mod status;
mod tls;

pub use db::{is_connection_error, redact, statement, Db, Interval, SCHEMA_VERSION};
pub use history::{DomainEvent, FleetHistory};
pub use lease::{Claimed, Completion, DomainState, Left};
pub use pin::{pinned_settings, PinError};
pub use record::DoneRecord;
pub use seed::{clip_key, order_key, Seeded};
pub use status::{ClassStatus, DomainStatus, FleetStatus, WorkerStatus};

/// Where a fleet lives: its database, the schema of its tables and its name (`--db URL --fleet NAME
/// [--db-schema S]`), for the commands that read an existing fleet (status, report, merge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetRef {
    pub url: String,
    pub schema: String,
    pub name: String,
}

impl FleetRef {
    /// Connects to the fleet, which must exist already (a usage error names what is missing otherwise).
    pub async fn open(&self) -> anyhow::Result<Db> {
        Db::open_existing(&self.url, &self.schema, &self.name).await
    }
}

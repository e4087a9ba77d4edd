//! The connection: connect, create or migrate the tables (versioned, under an advisory lock so that workers
//! starting together migrate once), and the named statements of `statements.sql`.

use super::tls;
use crate::exit_codes::{Usage, UsageExt};
use anyhow::Context;
use bytes::{BufMut, BytesMut};
use std::time::Duration;
use tokio_postgres::types::{IsNull, ToSql, Type, WrongType};
use tokio_postgres::{Client, Row};

const SCHEMA_SQL: &str = include_str!("schema.sql");
const STATEMENTS_SQL: &str = include_str!("statements.sql");
/// Migrations after version 1 (`schema.sql`), oldest first. Never edit one that has shipped: add another.
const MIGRATIONS: &[&str] = &[
    include_str!("migrate_2.sql"),
    include_str!("migrate_3.sql"),
    include_str!("migrate_4.sql"),
    include_str!("migrate_5.sql"),
];
/// The version this kinetics-dl writes.
pub const SCHEMA_VERSION: i32 = 1 + MIGRATIONS.len() as i32;

/// One connection to the fleet's database, its search path set to the fleet's schema.
pub struct Db {
    client: Client,
    /// The fleet's name: every statement's `$1`.
    pub fleet: String,
    url: String,
    schema: String,
    connection: tokio::task::JoinHandle<()>,
}

impl Drop for Db {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// Opens a connection named `kinetics-dl/PID` (so that an operator, or a test, can see and end it in
/// `pg_stat_activity`) with its search path set to `schema`.
async fn open(url: &str, schema: &str) -> anyhow::Result<(Client, tokio::task::JoinHandle<()>)> {
    check_identifier("--db-schema", schema)?;
    // `sslmode=verify-*` and `sslrootcert` are the connector's, not tokio-postgres's.
    let (rest, settings) = tls::split(url).or_usage()?;
    let mut config: tokio_postgres::Config =
        rest.parse().with_context(|| format!("--db: not a PostgreSQL URL: {}", redact(url))).or_usage()?;
    config.application_name(format!("kinetics-dl/{}", std::process::id()));
    config.connect_timeout(Duration::from_secs(10));
    let tls = tls::MakeRustls::new(settings)?;
    let settings = tls.settings.clone();
    let (client, connection) = match config.connect(tls).await {
        Ok(connected) => connected,
        Err(e) => {
            let e = anyhow::Error::new(e);
            let at = format!("failed to connect to the fleet database {}", redact(url));
            // A certificate refused is the user's to fix (the CA, the host name): exit 2, not a retry.
            return Err(match tls::refusal(&e, &settings) {
                Some(why) => Usage(e.context(why).context(at)).into(),
                None => e.context(at),
            });
        }
    };
    let connection = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("fleet database connection: {e}");
        }
    });
    // The schema may not exist yet (a new fleet): the search path names it all the same.
    client.batch_execute(&format!("SET search_path TO {schema}")).await?;
    Ok((client, connection))
}

impl Db {
    /// Connects to `url`, works in `schema` (created when missing) and brings its tables to
    /// [`SCHEMA_VERSION`].
    pub async fn connect(url: &str, schema: &str, fleet: &str) -> anyhow::Result<Db> {
        let (client, connection) = open(url, schema).await?;
        let db = Db { client, fleet: fleet.to_string(), url: url.into(), schema: schema.into(), connection };
        db.migrate(schema).await.with_context(|| format!("failed to set up the fleet's tables in schema {schema}"))?;
        Ok(db)
    }

    /// Connects to an existing fleet for reading (`status`): creates nothing, and says so when `fleet` is not
    /// in `schema`.
    pub async fn open_existing(url: &str, schema: &str, fleet: &str) -> anyhow::Result<Db> {
        let (client, connection) = open(url, schema).await?;
        let db = Db { client, fleet: fleet.to_string(), url: url.into(), schema: schema.into(), connection };
        let found = db.client.query("SELECT 1 FROM fleet WHERE fleet = $1", &[&fleet]).await;
        if !matches!(found, Ok(rows) if !rows.is_empty()) {
            anyhow::bail!("no fleet `{fleet}` in schema {schema} of {}: start one with `download --db`", redact(url));
        }
        let version: i32 = db.client.query_one("SELECT max(version) FROM schema_version", &[]).await?.get(0);
        if version != SCHEMA_VERSION {
            anyhow::bail!(
                "the fleet's tables are at version {version}, this kinetics-dl reads {SCHEMA_VERSION}: run one worker \
                 of the newer of the two first"
            );
        }
        Ok(db)
    }

    /// A new connection in place of a lost one (the server restarted, the network broke).
    pub async fn reconnect(&mut self) -> anyhow::Result<()> {
        let (client, connection) = open(&self.url, &self.schema).await?;
        self.connection.abort();
        self.client = client;
        self.connection = connection;
        Ok(())
    }

    async fn migrate(&self, schema: &str) -> anyhow::Result<()> {
        let lock = format!("kinetics-dl fleet {schema}");
        self.client.execute("SELECT pg_advisory_lock(hashtext($1))", &[&lock]).await?;
        let result = self.migrate_locked(schema).await;
        self.client.execute("SELECT pg_advisory_unlock(hashtext($1))", &[&lock]).await?;
        result
    }

    async fn migrate_locked(&self, schema: &str) -> anyhow::Result<()> {
        self.client
            .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}; SET search_path TO {schema}"))
            .await?;
        self.client.batch_execute(SCHEMA_SQL).await?;
        let version: i32 = self.client.query_one("SELECT max(version) FROM schema_version", &[]).await?.get(0);
        if version > SCHEMA_VERSION {
            anyhow::bail!(
                "the fleet's tables are at version {version}, newer than this kinetics-dl knows ({SCHEMA_VERSION}): \
                 upgrade kinetics-dl"
            );
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize - 1) {
            let to = i + 2;
            self.client
                .batch_execute(&format!("BEGIN; {sql}; COMMIT"))
                .await
                .with_context(|| format!("failed to migrate the fleet's tables to version {to}"))?;
        }
        Ok(())
    }

    /// Runs the named statement; `$1` is the fleet unless `with_fleet` is false.
    pub async fn query(&self, name: &str, params: &[&(dyn ToSql + Sync)]) -> anyhow::Result<Vec<Row>> {
        let sql = statement(name);
        self.client.query(sql, params).await.with_context(|| format!("fleet statement `{name}` failed"))
    }

    /// Runs the named statement and returns how many rows it changed.
    pub async fn execute(&self, name: &str, params: &[&(dyn ToSql + Sync)]) -> anyhow::Result<u64> {
        let sql = statement(name);
        self.client.execute(sql, params).await.with_context(|| format!("fleet statement `{name}` failed"))
    }

    /// The connection is gone (the server restarted, the network broke).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }
}

/// An error that says the connection, not the statement, failed: the connection closed or never came, or the
/// server ended it (SQLSTATE classes 08, connection exception, and 57, operator intervention: a restart or an
/// administrator's `pg_terminate_backend`). Work can go on after a reconnect.
pub fn is_connection_error(error: &anyhow::Error) -> bool {
    let Some(pg) = error.chain().find_map(|c| c.downcast_ref::<tokio_postgres::Error>()) else { return false };
    if pg.is_closed() {
        return true;
    }
    match pg.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            code.starts_with("08") || code.starts_with("57")
        }
        // No answer from the server at all: an I/O error, a timeout.
        None => true,
    }
}

/// The statement of `statements.sql`'s `-- name: NAME` section. Panics on an unknown name: the names are
/// this module's own constants, tested below.
pub fn statement(name: &str) -> &'static str {
    let marker = format!("-- name: {name}\n");
    let start = STATEMENTS_SQL.find(&marker).unwrap_or_else(|| panic!("no fleet statement `{name}`")) + marker.len();
    let rest = &STATEMENTS_SQL[start..];
    let end = rest.find("-- name: ").unwrap_or(rest.len());
    rest[..end].trim().trim_end_matches(';')
}

/// A schema name goes into SQL text: plain lowercase identifiers only.
fn check_identifier(flag: &str, name: &str) -> anyhow::Result<()> {
    let ok = name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    anyhow::ensure!(ok, "{flag} must be a lowercase SQL identifier ([a-z_][a-z0-9_]*), got `{name}`");
    Ok(())
}

/// The URL without its password, for messages: the URL's `user:password@`, a `password=` query parameter,
/// and libpq's `password=...` key.
pub fn redact(url: &str) -> String {
    let url = match (url.find("://"), url.find('?').map_or(url.rfind('@'), |q| url[..q].rfind('@'))) {
        (Some(s), Some(at)) if at > s => {
            let user = &url[s + 3..at];
            match user.split_once(':') {
                Some((u, _)) => format!("{}{u}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    };
    // `password=VALUE` wherever it is a key: after `?`, `&`, the start or a space (a quoted value to its quote).
    let mut out = String::with_capacity(url.len());
    let mut rest = url.as_str();
    while let Some(at) = rest.find("password=") {
        let is_key = at == 0 || matches!(rest.as_bytes()[at - 1], b'?' | b'&' | b' ' | b'\t');
        out.push_str(&rest[..at + "password=".len()]);
        rest = &rest[at + "password=".len()..];
        if !is_key {
            continue;
        }
        let end = if let Some(quoted) = rest.strip_prefix('\'') {
            quoted.find('\'').map_or(rest.len(), |q| q + 2)
        } else {
            rest.find(['&', ' ', '\t']).unwrap_or(rest.len())
        };
        out.push_str("***");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// A duration bound to an `interval` parameter (microseconds, no days or months).
#[derive(Debug, Clone, Copy)]
pub struct Interval(pub Duration);

impl ToSql for Interval {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.put_i64(i64::try_from(self.0.as_micros()).unwrap_or(i64::MAX));
        out.put_i32(0);
        out.put_i32(0);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }

    fn to_sql_checked(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        if !Self::accepts(ty) {
            return Err(Box::new(WrongType::new::<Self>(ty.clone())));
        }
        self.to_sql(ty, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_statement_the_code_names_is_there() {
        for name in [
            "claim",
            "heartbeat",
            "rescue",
            "complete",
            "give_back",
            "breaker_open",
            "probe",
            "breaker_close",
            "release",
            "release_all",
            "pin",
            "pinned",
            "seed",
            "claimed",
            "failure",
            "geo_block",
            "left",
            "worker_start",
            "worker_beat",
            "worker_stop",
            "domain_add",
            "domain_state",
            "domain_rate",
            "domain_rate_cut",
            "status_clips",
            "status_classes",
            "done_bytes",
            "pace",
            "status_workers",
            "status_domains",
        ] {
            let sql = statement(name);
            assert!(sql.contains("$1"), "{name}: {sql}");
            assert!(!sql.contains("-- name:"), "{name} runs into the next statement");
        }
    }

    #[test]
    fn identifiers_and_redaction() {
        for ok in ["kdl", "kdl_t_a_1", "_x"] {
            check_identifier("--db-schema", ok).unwrap();
        }
        for bad in ["", "Kdl", "1kdl", "kdl;drop", "a-b", "kdl\"x"] {
            assert!(check_identifier("--db-schema", bad).is_err(), "{bad}");
        }
        assert_eq!(redact("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("host=h user=u"), "host=h user=u");
        assert_eq!(redact("postgres://u:s@cret@h/db"), "postgres://u:***@h/db");
        assert_eq!(
            redact("postgres://u@h/db?sslmode=verify-full&password=secret&sslrootcert=/ca.pem"),
            "postgres://u@h/db?sslmode=verify-full&password=***&sslrootcert=/ca.pem"
        );
        assert_eq!(
            redact("postgres://u:pw@h/db?sslrootcert=/a@b/ca.pem"),
            "postgres://u:***@h/db?sslrootcert=/a@b/ca.pem"
        );
        assert_eq!(redact("host=h password=secret user=u"), "host=h password=*** user=u");
        assert_eq!(redact("host=h password='a b' user=u"), "host=h password=*** user=u");
        assert_eq!(redact("host=h mypassword=x"), "host=h mypassword=x");
    }
}

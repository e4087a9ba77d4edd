//! The PostgreSQL server of the fleet tests: `KDL_TEST_PG` (exported by `scripts/test.sh`, which starts a
//! throwaway cluster with `scripts/test-pg.sh`). Each test works in its own schema, created here and dropped
//! when the [`Schema`] goes out of scope, so tests run in parallel against one server.
//!
//! Included by path (`#[path = "common/pg.rs"] mod pg;`), beside `common/skip.rs`.

use std::process::Command;

/// The variable holding the server's URL.
pub const URL_VAR: &str = "KDL_TEST_PG";

/// The server's URL, or `None` after saying SKIPPED (which fails the test under CI's no-skip rule).
pub fn url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            super::skip::missing_tool(
                &format!("PostgreSQL ({URL_VAR} is not set)"),
                "run scripts/test.sh, or export KDL_TEST_PG=$(scripts/test-pg.sh)",
            );
            None
        }
    }
}

/// Runs `sql` with psql against `url`; returns its unaligned, tuples-only output. Panics with psql's message.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql runs");
    assert!(out.status.success(), "psql failed on {sql:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A schema of this test's own, dropped with everything in it at the end.
pub struct Schema {
    pub url: String,
    pub name: String,
}

impl Schema {
    pub fn create(url: &str, tag: &str) -> Schema {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let name = format!("kdl_t_{tag}_{}_{nanos}", std::process::id());
        psql(url, &format!("CREATE SCHEMA {name}"));
        Schema { url: url.to_string(), name }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([&self.url, "-X", "-q", "-c", &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name)])
            .output();
    }
}

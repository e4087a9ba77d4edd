//! The fleet's PostgreSQL: the test server answers and tests are isolated in schemas of their own.

#[path = "common/skip.rs"]
mod skip;

#[path = "common/pg.rs"]
mod pg;

#[test]
fn each_test_gets_its_own_schema_and_drops_it() {
    let Some(url) = pg::url() else { return };
    let version: u32 = pg::psql(&url, "SHOW server_version_num").parse().expect("a number");
    assert!(version >= 130000, "the fleet needs PostgreSQL 13 or later, the test server is {version}");
    let (a, b) = (pg::Schema::create(&url, "a"), pg::Schema::create(&url, "b"));
    assert_ne!(a.name, b.name);
    pg::psql(&url, &format!("CREATE TABLE {}.clip (k text PRIMARY KEY)", a.name));
    pg::psql(&url, &format!("CREATE TABLE {}.clip (k text PRIMARY KEY)", b.name));
    pg::psql(&url, &format!("INSERT INTO {}.clip VALUES ('x'), ('y')", a.name));
    assert_eq!(pg::psql(&url, &format!("SELECT count(*) FROM {}.clip", a.name)), "2");
    assert_eq!(pg::psql(&url, &format!("SELECT count(*) FROM {}.clip", b.name)), "0");
    let name = a.name.clone();
    drop(a);
    let left = format!("SELECT count(*) FROM pg_namespace WHERE nspname = '{name}'");
    assert_eq!(pg::psql(&url, &left), "0", "the schema is dropped with the test");
}

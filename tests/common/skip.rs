//! A test whose tool (Chromium, the Python `webdataset` package) is missing: skipped with a message on a
//! developer's machine, failed in CI, where a silent pass would hide a real check.
//!
//! Included by path (`#[path = "common/skip.rs"] mod skip;`) so that tests which need nothing else of
//! `common` stay light.

use std::ffi::OsString;

/// Set to `1` by `.ci/run`: a missing test tool fails the test instead of skipping it.
pub const REQUIRE_TOOLS: &str = "KINETICS_DL_REQUIRE_TEST_TOOLS";

/// Call when `what` is missing, then return from the test: under [`REQUIRE_TOOLS`]`=1` this panics.
pub fn missing_tool(what: &str, install: &str) {
    missing_tool_under(std::env::var_os(REQUIRE_TOOLS), what, install)
}

fn missing_tool_under(require: Option<OsString>, what: &str, install: &str) {
    if require.is_some_and(|v| v == "1") {
        panic!("{what} is missing and {REQUIRE_TOOLS}=1 forbids skipping: {install}");
    }
    eprintln!("SKIPPED: {what} is missing ({install})");
}

#[test]
fn a_missing_tool_skips_outside_ci() {
    missing_tool_under(None, "a tool", "install it");
    missing_tool_under(Some("0".into()), "a tool", "install it");
}

#[test]
#[should_panic(expected = "KINETICS_DL_REQUIRE_TEST_TOOLS=1 forbids skipping")]
fn a_missing_tool_fails_in_ci() {
    missing_tool_under(Some("1".into()), "a tool", "install it");
}

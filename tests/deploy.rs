//! The deployment files: `deploy/slurm.sh` is valid bash (and shellcheck-clean where shellcheck is
//! installed), `deploy/kubernetes.yaml` parses as Indexed Jobs whose fleet pods take the node name as
//! throttle domain, and every option either file gives kinetics-dl exists in `kinetics-dl download --help`.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn deploy(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(name)
}

/// The long options `download --help` lists.
fn download_options() -> BTreeSet<String> {
    let o = run_strs(&["download", "--help"]);
    o.expect_code(0);
    long_options(&o.stdout)
}

fn long_options(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
        if let Some(name) = word.strip_prefix("--") {
            if name.starts_with(|c: char| c.is_ascii_lowercase()) {
                found.insert(format!("--{}", name.trim_end_matches('-')));
            }
        }
    }
    found
}

#[test]
fn slurm_script_is_valid_bash_and_uses_only_real_options() {
    let script = deploy("slurm.sh");
    let o = Command::new("bash").arg("-n").arg(&script).output().expect("bash runs");
    assert!(o.status.success(), "bash -n: {}", String::from_utf8_lossy(&o.stderr));
    if let Ok(o) = Command::new("shellcheck").arg(&script).output() {
        assert!(o.status.success(), "shellcheck:\n{}", String::from_utf8_lossy(&o.stdout));
    }
    let text = std::fs::read_to_string(&script).unwrap();
    // The kinetics-dl command lines: from `kinetics-dl download` to the line that does not continue.
    let mut code = String::new();
    let mut inside = false;
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        inside |= line.contains("kinetics-dl download");
        if inside {
            code.push_str(line);
            code.push('\n');
            inside = line.trim_end().ends_with('\\');
        }
    }
    assert!(code.contains("--shard auto"), "the shard mode");
    assert!(code.contains("--throttle-domain"), "the fleet mode");
    let used = long_options(&code);
    let known = download_options();
    let unknown: Vec<_> = used.difference(&known).collect();
    assert!(unknown.is_empty(), "deploy/slurm.sh uses options download does not have: {unknown:?}");
}

#[test]
fn kubernetes_jobs_parse_and_use_only_real_options() {
    // serde_yaml is not in the tree: Python's yaml module parses the file and hands back JSON.
    let py = "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))";
    let o = Command::new("python3").args(["-c", py]).arg(deploy("kubernetes.yaml")).output().expect("python3 runs");
    assert!(o.status.success(), "the YAML parses: {}", String::from_utf8_lossy(&o.stderr));
    let docs: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(docs.len(), 2, "a static-shard Job and a fleet Job");
    let known = download_options();
    let mut modes = BTreeSet::new();
    for doc in &docs {
        assert_eq!(doc["kind"], "Job");
        assert_eq!(doc["spec"]["completionMode"], "Indexed");
        let completions = doc["spec"]["completions"].as_u64().expect("completions");
        let container = &doc["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["command"][0], "kinetics-dl");
        let args: Vec<&str> = container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        assert_eq!(args[0], "download");
        for a in args.iter().filter(|a| a.starts_with("--")) {
            assert!(known.contains(*a), "{a} is not an option of download");
        }
        let value = |flag: &str| args.iter().position(|a| *a == flag).map(|i| args[i + 1]);
        assert!(value("--out").unwrap().contains("$(JOB_COMPLETION_INDEX)"), "each pod its own folder");
        if value("--shard") == Some("auto") {
            assert_eq!(value("--shards"), Some(completions.to_string().as_str()), "--shards is the completions");
            modes.insert("shard");
        }
        if let Some(domain) = value("--throttle-domain") {
            assert_eq!(domain, "$(NODE_NAME)");
            let env = container["env"].as_array().unwrap();
            let node = env.iter().find(|e| e["name"] == "NODE_NAME").expect("NODE_NAME in env");
            assert_eq!(node["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName");
            assert!(env.iter().any(|e| e["name"] == "KINETICS_DL_DB"), "the database URL");
            modes.insert("fleet");
        }
    }
    assert_eq!(modes, BTreeSet::from(["fleet", "shard"]));
}

//! Processes from /proc: which children kinetics-dl started, and whether any outlived it.

/// One live (non-zombie) process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    /// Clock ticks after boot at which it started: with the pid, it names one process even if pids wrap.
    pub starttime: u64,
    pub cmdline: String,
}

fn read_proc(pid: i32) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields we want follow the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(Proc {
        pid,
        ppid: fields.get(1)?.parse().ok()?,
        starttime: fields.get(19)?.parse().ok()?,
        cmdline: String::from_utf8_lossy(&cmdline).replace('\0', " ").trim().to_owned(),
    })
}

/// Every live process.
pub fn processes() -> Vec<Proc> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).filter_map(read_proc).collect()
}

/// Live descendants of `root` (children, grandchildren, ...).
pub fn descendants(root: i32) -> Vec<Proc> {
    let all = processes();
    let mut found: Vec<Proc> = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for p in all.iter().filter(|p| p.ppid == parent) {
            frontier.push(p.pid);
            found.push(p.clone());
        }
    }
    found
}

/// The processes of `procs` that are still alive (same pid and start time, not a zombie).
pub fn still_alive(procs: &[Proc]) -> Vec<Proc> {
    procs.iter().filter(|p| read_proc(p.pid).is_some_and(|now| now.starttime == p.starttime)).cloned().collect()
}

/// Live processes whose command line mentions `needle` (for example a test's OUT folder), except us.
pub fn mentioning(needle: &str) -> Vec<Proc> {
    let me = std::process::id() as i32;
    processes().into_iter().filter(|p| p.pid != me && p.cmdline.contains(needle)).collect()
}

/// Waits up to `limit` for every process of `procs` to end; panics listing the survivors, after killing
/// them (they are this test's own descendants) so they do not outlive the test.
#[track_caller]
pub fn assert_all_end(procs: &[Proc], limit: std::time::Duration, what: &str) {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let alive = still_alive(procs);
        if alive.is_empty() {
            return;
        }
        if std::time::Instant::now() >= deadline {
            for p in &alive {
                // SAFETY: a plain syscall on a pid we just saw alive with the start time we recorded.
                unsafe { libc::kill(p.pid, libc::SIGKILL) };
            }
            let list: Vec<String> =
                alive.iter().map(|p| format!("{} (parent {}): {}", p.pid, p.ppid, p.cmdline)).collect();
            panic!("{what}: still running after {limit:?}:\n{}", list.join("\n"));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

//! Journal tests against a real SQLite file.

use super::*;

fn job(id: &str, start: i64, label: &str) -> Job {
    Job {
        key: ClipKey { youtube_id: id.into(), start_ms: start * 1000, end_ms: (start + 10) * 1000 },
        label: Some(label.into()),
        split: Some("validate".into()),
        rel_path: PathBuf::from(format!("validate/{label}/{id}.mp4")),
        rows: 1,
        ..Job::default()
    }
}

fn failed<'a>(state: State, category: &'a str) -> Failed<'a> {
    Failed { state, category, message: "m", stderr_tail: "tail", attempts: 1, next_attempt_ms: None, bytes_fetched: 5 }
}

#[test]
fn migrates_once_and_refuses_newer_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.sqlite");
    drop(Journal::open(&path).unwrap());
    drop(Journal::open(&path).unwrap()); // second open: no migration runs again
    let conn = Connection::open(&path).unwrap();
    let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
    drop(conn);
    let err = Journal::open(&path).err().unwrap();
    assert!(format!("{err:#}").contains("newer than this kinetics-dl"), "{err:#}");
}

#[test]
fn sync_adds_new_jobs_and_never_moves_done_clips() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
    assert_eq!(j.sync_plan(&[job("aaaaaaaaaaa", 0, "x"), job("bbbbbbbbbbb", 5, "y")]).unwrap(), 2);
    let clips = j.clips().unwrap();
    j.record_done(clips[0].id, &Done { size_bytes: 100, ..Default::default() }).unwrap();
    // A rerun with other class folders: the done clip keeps its path, the pending one moves.
    let mut moved = vec![job("aaaaaaaaaaa", 0, "x2"), job("bbbbbbbbbbb", 5, "y2"), job("ccccccccccc", 1, "z")];
    moved[0].rel_path = "elsewhere/a.mp4".into();
    assert_eq!(j.sync_plan(&moved).unwrap(), 1);
    let clips = j.clips().unwrap();
    assert_eq!(clips.len(), 3);
    assert_eq!(clips[0].rel_path, PathBuf::from("validate/x/aaaaaaaaaaa.mp4"));
    assert_eq!(clips[1].rel_path, PathBuf::from("validate/y2/bbbbbbbbbbb.mp4"));
    // The same plan again adds nothing and changes nothing; a pending clip whose row count alone changed
    // (a duplicate row appeared) still takes it, and the done clip still keeps its own.
    assert_eq!(j.sync_plan(&moved).unwrap(), 0);
    moved[0].rows = 2;
    moved[1].rows = 3;
    assert_eq!(j.sync_plan(&moved).unwrap(), 0);
    let rows: Vec<i64> = j
        .conn
        .prepare("SELECT rows FROM clips ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows, [1, 3, 1]);
    assert_eq!(j.clips().unwrap()[1].label.as_deref(), Some("y2"));
}

#[test]
fn counts_split_failures_by_category() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
    j.sync_plan(&[
        job("aaaaaaaaaaa", 0, "x"),
        job("bbbbbbbbbbb", 0, "x"),
        job("ccccccccccc", 0, "x"),
        job("ddddddddddd", 0, "x"),
    ])
    .unwrap();
    let ids: Vec<i64> = j.clips().unwrap().iter().map(|c| c.id).collect();
    j.record_done(ids[0], &Done { size_bytes: 1000, bytes_fetched: 1500, ..Default::default() }).unwrap();
    j.record_failure(ids[1], &failed(State::Failed, "http_404")).unwrap();
    j.record_failure(ids[2], &failed(State::Failed, "unavailable")).unwrap();
    let c = j.counts().unwrap();
    assert_eq!((c.total, c.done, c.pending), (4, 1, 1));
    assert_eq!(c.failed.get("http_404"), Some(&1));
    assert_eq!(c.failed.get("unavailable"), Some(&1));
    assert_eq!(c.bytes_on_disk, 1000);
    assert_eq!(c.bytes_fetched, 1510);
    j.reset_to_pending(&[ids[1]]).unwrap();
    assert_eq!(j.counts().unwrap().pending, 2);
}

#[test]
fn a_remembered_plan_is_known_until_a_sync_or_another_clip_changes_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
    let jobs = [job("aaaaaaaaaaa", 0, "x"), job("bbbbbbbbbbb", 5, "y")];
    j.sync_plan(&jobs).unwrap();
    assert_eq!(j.known_plan("d1").unwrap(), None, "nothing remembered yet");
    let plan = KnownPlan { clips: 2, rows: 3, merged: 1 };
    j.remember_plan("d1", &plan).unwrap();
    assert_eq!(j.known_plan("d1").unwrap(), Some(plan));
    assert_eq!(j.known_plan("d2").unwrap(), None, "another digest");
    // Remembering again replaces it.
    j.remember_plan("d2", &plan).unwrap();
    assert_eq!(j.known_plan("d1").unwrap(), None);
    assert_eq!(j.known_plan("d2").unwrap(), Some(plan));
    // A journal with more clips than the plan (a merge, another plan's sync) does not hold just this plan.
    j.remember_plan("d3", &KnownPlan { clips: 1, rows: 1, merged: 0 }).unwrap();
    assert_eq!(j.known_plan("d3").unwrap(), None);
    // Any sync forgets the plan, even one that adds nothing.
    j.remember_plan("d4", &plan).unwrap();
    j.sync_plan(&jobs).unwrap();
    assert_eq!(j.known_plan("d4").unwrap(), None);
}

#[test]
fn clip_states_stream_in_id_order_and_a_task_reads_back_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
    j.sync_plan(&[job("aaaaaaaaaaa", 0, "x"), job("bbbbbbbbbbb", 5, "y")]).unwrap();
    let ids: Vec<i64> = j.clips().unwrap().iter().map(|c| c.id).collect();
    j.record_failure(ids[1], &failed(State::Failed, "private")).unwrap();
    let mut seen = Vec::new();
    j.for_each_clip_state(|c| {
        seen.push((
            c.id,
            c.youtube_id.to_owned(),
            c.start_ms,
            c.rel_path.to_owned(),
            c.state,
            c.category.map(String::from),
            c.attempts,
        ));
        Ok(())
    })
    .unwrap();
    assert_eq!(
        seen,
        vec![
            (ids[0], "aaaaaaaaaaa".to_owned(), 0, "validate/x/aaaaaaaaaaa.mp4".to_owned(), State::Pending, None, 0),
            (
                ids[1],
                "bbbbbbbbbbb".to_owned(),
                5000,
                "validate/y/bbbbbbbbbbb.mp4".to_owned(),
                State::Failed,
                Some("private".to_owned()),
                1
            ),
        ]
    );
    let (key, rel) = j.clip_task(ids[1]).unwrap();
    assert_eq!(key, ClipKey { youtube_id: "bbbbbbbbbbb".into(), start_ms: 5000, end_ms: 15000 });
    assert_eq!(rel, PathBuf::from("validate/y/bbbbbbbbbbb.mp4"));
}

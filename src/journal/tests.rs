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

/// `counts` sums one scan of the table: the same numbers as the grouped queries it replaced, on a journal
/// with every state, source and column shape (mirror sources, adopted and unknown ones, NULL categories,
/// media requests, whole videos, CPU recorded or not).
#[test]
fn counts_from_one_scan_match_the_grouped_queries() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
    let jobs: Vec<Job> = (0..60).map(|i| job(&format!("id{i:09}"), i, if i % 3 == 0 { "x" } else { "y" })).collect();
    j.sync_plan(&jobs).unwrap();
    let ids: Vec<i64> = j.clips().unwrap().iter().map(|c| c.id).collect();
    let sources = ["youtube", "mirror:k400_val_0.tar.gz", "adopted", "mirror:k400_val_1.tar.gz"];
    for (n, &id) in ids.iter().enumerate() {
        match n % 5 {
            0..=2 => {
                let cpu = (n % 2 == 0).then(|| crate::cpu::StageCpu {
                    extract_s: 0.5 + n as f64 / 100.0,
                    fetch_s: 0.1,
                    encode_s: 1.0 + n as f64 / 10.0,
                    verify_s: 0.2,
                });
                let done = Done {
                    size_bytes: 1000 + n as u64,
                    bytes_fetched: 1500 + n as u64,
                    media_requests: (n % 4) as u64,
                    whole_video: n % 7 == 0,
                    source: sources[n % 4].into(),
                    cpu,
                    ..Default::default()
                };
                j.record_done(id, &done).unwrap();
            }
            3 => j.record_failure(id, &failed(State::Failed, ["http_404", "unavailable"][n % 2])).unwrap(),
            _ => {}
        }
    }
    j.conn.execute("UPDATE clips SET source = NULL WHERE id = ?1", [ids[5]]).unwrap();
    j.conn.execute("UPDATE clips SET category = NULL WHERE id = ?1", [ids[3]]).unwrap();

    let mut want = Counts::default();
    let mut by_source = j
        .conn
        .prepare(
            "SELECT CASE WHEN source LIKE 'mirror:%' THEN 'mirror' ELSE COALESCE(source, 'unknown') END, COUNT(*)
             FROM clips WHERE state = 'done' GROUP BY 1",
        )
        .unwrap();
    for row in by_source.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))).unwrap() {
        let (source, n) = row.unwrap();
        want.by_source.insert(source, n as u64);
    }
    let mut stmt = j
        .conn
        .prepare(
            "SELECT state, COALESCE(category, 'other'), COUNT(*), COALESCE(SUM(bytes_fetched), 0),
                    COALESCE(SUM(CASE WHEN state = 'done' THEN size_bytes ELSE 0 END), 0), SUM(whole_video),
                    COALESCE(SUM(media_requests), 0), COUNT(CASE WHEN media_requests > 0 THEN 1 END)
             FROM clips GROUP BY state, category",
        )
        .unwrap();
    let mut rows = stmt.query([]).unwrap();
    while let Some(r) = rows.next().unwrap() {
        let state = State::parse(&r.get::<_, String>(0).unwrap());
        let n = r.get::<_, i64>(2).unwrap() as u64;
        want.total += n;
        want.bytes_fetched += r.get::<_, i64>(3).unwrap() as u64;
        want.bytes_on_disk += r.get::<_, i64>(4).unwrap() as u64;
        want.whole_video_fallbacks += r.get::<_, Option<i64>>(5).unwrap().unwrap_or(0) as u64;
        want.media_requests += r.get::<_, i64>(6).unwrap() as u64;
        match state {
            State::Done => {
                want.done += n;
                want.media_request_clips += r.get::<_, i64>(7).unwrap() as u64;
            }
            State::Pending => want.pending += n,
            State::Failed => *want.failed.entry(r.get(1).unwrap()).or_default() += n,
        }
    }
    want.media_requests_per_clip = want.media_requests as f64 / want.media_request_clips as f64;
    let crate::journal::StatusCounts { counts, cpu, .. } = j.status_counts().unwrap();
    assert_eq!(counts, want);
    assert_eq!(j.counts().unwrap(), want);
    assert_eq!((want.done, want.pending, want.failed_total()), (36, 12, 12));
    assert_eq!(want.by_source.get("mirror"), Some(&17));
    assert_eq!(want.by_source.get("unknown"), Some(&1));
    assert_eq!(want.failed.get("other"), Some(&1));

    let mut stmt = j
        .conn
        .prepare(
            "SELECT extract_cpu_s, fetch_cpu_s, encode_cpu_s, verify_cpu_s FROM clips
             WHERE state = 'done' AND extract_cpu_s IS NOT NULL ORDER BY id",
        )
        .unwrap();
    let measured: Vec<crate::cpu::StageCpu> =
        stmt.query_map([], |r| stage_cpu(r, 0)).unwrap().map(|r| r.unwrap().unwrap()).collect();
    assert_eq!(measured.len(), 18);
    let want_cpu = crate::cpu::PerClip::of(&measured);
    assert_eq!(format!("{cpu:?}"), format!("{want_cpu:?}"));
    assert_eq!(format!("{:?}", j.cpu_per_clip().unwrap()), format!("{want_cpu:?}"));
}

/// Every clip row as text, all columns but the time it was written, in id order.
fn clip_rows(j: &Journal) -> Vec<String> {
    let mut stmt = j.conn.prepare("SELECT * FROM clips ORDER BY id").unwrap();
    let names: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
    let rows = stmt
        .query_map([], |r| {
            let mut line = Vec::new();
            for (i, name) in names.iter().enumerate() {
                if name != "updated_ms" {
                    line.push(format!("{name}={:?}", r.get_ref(i)?));
                }
            }
            Ok(line.join(" "))
        })
        .unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

/// The unique indexes of the clips table, by name.
fn unique_indexes(j: &Journal) -> Vec<String> {
    let mut stmt = j.conn.prepare("SELECT name, \"unique\" FROM pragma_index_list('clips') ORDER BY name").unwrap();
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?))).unwrap();
    rows.map(Result::unwrap).filter(|(_, unique)| *unique).map(|(name, _)| name).collect()
}

#[test]
fn the_first_import_builds_the_key_index_after_its_rows_with_the_same_result_as_one_by_one() {
    let mut jobs: Vec<Job> = (0..50).map(|i| job(&format!("id{i:09}"), i % 7, &format!("class{}", i % 3))).collect();
    jobs[3].extra_labels = vec!["second".into()];
    jobs.swap(10, 40);
    let dir = tempfile::tempdir().unwrap();
    // Into an empty journal: rows first, then the index.
    let mut bulk = Journal::open(&dir.path().join("bulk.sqlite")).unwrap();
    assert_eq!(bulk.sync_plan(&jobs).unwrap(), jobs.len());
    // One by one through the index: the same plan after its first job.
    let mut one_by_one = Journal::open(&dir.path().join("one.sqlite")).unwrap();
    assert_eq!(one_by_one.sync_plan(&jobs[..1]).unwrap(), 1);
    assert_eq!(one_by_one.sync_plan(&jobs).unwrap(), jobs.len() - 1);
    assert_eq!(clip_rows(&bulk), clip_rows(&one_by_one));
    assert_eq!(unique_indexes(&bulk), ["clips_key"]);
    // The index holds every key: the same plan again adds nothing.
    assert_eq!(bulk.sync_plan(&jobs).unwrap(), 0);
    assert_eq!(bulk.clips().unwrap().len(), jobs.len());
}

#[test]
fn a_key_twice_in_the_first_import_keeps_the_first_clip_refreshed_by_the_later_row() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = [job("aaaaaaaaaaa", 0, "x"), job("bbbbbbbbbbb", 5, "y"), job("aaaaaaaaaaa", 0, "x2")];
    let mut fresh = Journal::open(&dir.path().join("fresh.sqlite")).unwrap();
    assert_eq!(fresh.sync_plan(&jobs).unwrap(), 2);
    let clips = fresh.clips().unwrap();
    let got: Vec<(i64, &str, Option<&str>)> =
        clips.iter().map(|c| (c.id, c.key.youtube_id.as_str(), c.label.as_deref())).collect();
    assert_eq!(got, [(1, "aaaaaaaaaaa", Some("x2")), (2, "bbbbbbbbbbb", Some("y"))]);
    assert_eq!(unique_indexes(&fresh), ["clips_key"]);
    // As through the index into a journal that has clips.
    let mut known = Journal::open(&dir.path().join("known.sqlite")).unwrap();
    known.sync_plan(&jobs[..1]).unwrap();
    assert_eq!(known.sync_plan(&jobs).unwrap(), 1);
    assert_eq!(clip_rows(&fresh), clip_rows(&known));
}

#[test]
fn the_key_index_migration_keeps_every_clip_and_reference() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite");
    // A journal of the last version before the key index moved, with clips, a done one, and attempts.
    let before = schema::MIGRATIONS.iter().position(|m| m.contains("clips_key")).unwrap();
    {
        let mut conn = Connection::open(&path).unwrap();
        for (i, sql) in schema::MIGRATIONS[..before].iter().enumerate() {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", (i + 1) as i64).unwrap();
        }
        let tx = conn.transaction().unwrap();
        tx.execute_batch(
            "INSERT INTO clips (youtube_id, start_ms, end_ms, label, rel_path, state, labels, trim)
               VALUES ('aaaaaaaaaaa', 0, 10000, 'x', 'x/a.mp4', 'done', '[\"x\",\"y\"]', 'exact'),
                      ('bbbbbbbbbbb', 5000, 15000, 'y', 'y/b.mp4', 'pending', NULL, NULL);
             INSERT INTO runs (started_ms, command, settings) VALUES (1, 'download', '{}');
             INSERT INTO attempts (clip_id, run_id, started_ms, finished_ms, outcome) VALUES (1, 1, 1, 2, 'done');",
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let old = {
        let conn = Connection::open(&path).unwrap();
        let mut stmt = conn.prepare("SELECT * FROM clips ORDER BY id").unwrap();
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| (0..n).map(|i| Ok(format!("{:?}", r.get_ref(i)?))).collect::<Result<Vec<_>, _>>())
            .unwrap();
        rows.collect::<Result<Vec<_>, _>>().unwrap()
    };
    let mut j = Journal::open(&path).unwrap();
    let now = {
        let mut stmt = j.conn.prepare("SELECT * FROM clips ORDER BY id").unwrap();
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| (0..n).map(|i| Ok(format!("{:?}", r.get_ref(i)?))).collect::<Result<Vec<_>, _>>())
            .unwrap();
        rows.collect::<Result<Vec<_>, _>>().unwrap()
    };
    assert_eq!(now, old, "every clip, column for column");
    assert_eq!(unique_indexes(&j), ["clips_key"]);
    let fk: bool = j.conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0)).unwrap();
    assert!(fk, "foreign keys are on again");
    let attempt: i64 = j.conn.query_row("SELECT clip_id FROM attempts", [], |r| r.get(0)).unwrap();
    assert_eq!(attempt, 1);
    // The references are enforced on the new table, and the key is still unique.
    let dangling = j.conn.execute(
        "INSERT INTO attempts (clip_id, run_id, started_ms, finished_ms, outcome) VALUES (9, 1, 1, 2, 'done')",
        [],
    );
    assert!(dangling.is_err(), "a reference to no clip is refused");
    assert_eq!(j.sync_plan(&[job("aaaaaaaaaaa", 0, "z"), job("ccccccccccc", 1, "z")]).unwrap(), 1);
    assert_eq!(j.clips().unwrap().len(), 3);
}

#[test]
fn a_plan_synced_into_an_empty_journal_says_where_its_ids_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
    let jobs = [job("aaaaaaaaaaa", 0, "x"), job("bbbbbbbbbbb", 5, "y"), job("ccccccccccc", 5, "y")];
    assert_eq!(j.sync(&jobs).unwrap(), Synced { added: 3, imported_from: Some(1) });
    let ids: Vec<(i64, String)> = j
        .conn
        .prepare("SELECT id, youtube_id FROM clips ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ids, [(1, "aaaaaaaaaaa".into()), (2, "bbbbbbbbbbb".into()), (3, "ccccccccccc".into())]);
    // The table's CHECK holds again once the import is over.
    assert!(j.conn.execute("UPDATE clips SET state = 'lost' WHERE id = 1", []).is_err());
    // A journal that holds clips is synced row by row.
    let more = [job("aaaaaaaaaaa", 0, "x"), job("ddddddddddd", 0, "z")];
    assert_eq!(j.sync(&more).unwrap(), Synced { added: 1, imported_from: None });
}

#[test]
fn the_run_of_a_done_clip_is_its_latest_successful_attempt_in_any_storage_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
    let jobs: Vec<Job> = (0..4).map(|i| job(&format!("id{i:09}"), i, "x")).collect();
    j.sync_plan(&jobs).unwrap();
    let ids: Vec<i64> = j.clips().unwrap().iter().map(|c| c.id).collect();
    let runs: Vec<i64> = (0..4).map(|_| j.begin_run("download", "{}", "y", "f").unwrap()).collect();
    // (clip, run, outcome) in the order they are stored: a later run's attempt may be stored first (a merged
    // journal), a failed attempt after the success does not count, a clip never done has no run.
    let attempts = [
        (ids[0], runs[2], "done"),
        (ids[0], runs[0], "done"),
        (ids[0], runs[3], "failed"),
        (ids[1], runs[1], "done"),
        (ids[2], runs[0], "failed"),
        (ids[1], runs[0], "done"),
        (ids[3], runs[3], "done"),
    ];
    for (clip, run, outcome) in attempts {
        j.conn
            .execute(
                "INSERT INTO attempts (clip_id, run_id, started_ms, finished_ms, outcome) VALUES (?1, ?2, 0, 0, ?3)",
                params![clip, run, outcome],
            )
            .unwrap();
    }
    let got = read::done_run_by_clip(&j.conn).unwrap();
    let want: std::collections::HashMap<i64, i64> =
        [(ids[0], runs[2]), (ids[1], runs[1]), (ids[3], runs[3])].into_iter().collect();
    assert_eq!(got, want);
    // The same as SQL's grouping says.
    let mut stmt =
        j.conn.prepare("SELECT clip_id, MAX(run_id) FROM attempts WHERE outcome = 'done' GROUP BY clip_id").unwrap();
    let grouped: std::collections::HashMap<i64, i64> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
    assert_eq!(got, grouped);
}

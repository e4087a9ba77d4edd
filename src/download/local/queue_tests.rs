//! The order in which the one-machine store hands out clips, held to the rules the fleet's `claim` statement
//! follows (`fleet/statements.sql`, tested against PostgreSQL in `tests/fleet.rs`):
//!
//! | rule | fleet (`claim`) | this store |
//! |---|---|---|
//! | new clips in the store's order | `ORDER BY order_key` | plan order |
//! | a clip that went back (given back, a retry come due) before any new one | it was claimed earlier, so its `order_key` is below every unclaimed one | `delayed` and `queue` before `fresh` |
//! | a retry not before its time | `not_before <= now()` | `delayed` until its instant |
//! | a blocked clip not where it is blocked | `excluded_regions` | `blocked_on` lanes |
//! | a given-back clip charges nothing | `attempts` unchanged | `attempts` unchanged |
//!
//! Among clips that went back, the fleet takes the lower `order_key` (the one claimed first); this store
//! takes a retry come due before a clip given back, then given-back clips latest first.

use super::*;
use crate::classify::Category;
use crate::cli::{Cli, Command};
use crate::download::clip::{Engine, Task};
use crate::download::store::{Charged, Settled, Store, Take, Work};
use crate::progress::Silent;
use clap::Parser;

/// The clips `ids` (one row each, class `c`) planned, synced into a journal in a temp OUT.
struct Fixture {
    _dir: tempfile::TempDir,
    cfg: Config,
    out: OutDir,
    journal: Journal,
    plan: Plan,
    engine: Arc<Engine>,
    synced: crate::journal::Synced,
}

async fn fixture(ids: &[&str]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("out");
    let cli = Cli::try_parse_from([
        "kinetics-dl",
        "download",
        "--out",
        root.to_str().unwrap(),
        "--url-template",
        "http://127.0.0.1:9/watch?v={youtube_id}",
        "--annotations",
        "unused.csv",
    ])
    .unwrap();
    let Command::Download(args) = cli.command else { panic!("a download") };
    let cfg = args.into_config().unwrap();
    let rows: Vec<crate::annotations::Row> = ids
        .iter()
        .map(|id| crate::annotations::Row {
            label: Some("c".into()),
            extra_labels: vec![],
            boxes: vec![],
            youtube_id: id.to_string(),
            time_start: 0.0,
            time_end: 10.0,
            split: Some("train".into()),
            file: Arc::from(Path::new("ann.csv")),
            line: 2,
        })
        .collect();
    let plan = crate::plan::build(&rows, crate::plan::ClassDirs::default(), "mp4");
    let out = OutDir::open(&root).unwrap();
    let mut journal = Journal::open(&Journal::path_in(out.root())).unwrap();
    let synced = journal.sync(&plan.jobs).unwrap();
    let relay = crate::relay::Relay::start(crate::relay::RelayConfig::default()).await.unwrap();
    let engine = Arc::new(Engine {
        ytdlp: crate::tools::ytdlp::YtDlp::new("yt-dlp"),
        ffmpeg: crate::tools::ffmpeg::Ffmpeg::default(),
        relay,
        exits: vec![],
        encode: Default::default(),
        encode_slots: Arc::new(tokio::sync::Semaphore::new(1)),
        tmp_dir: out.tmp(),
    });
    Fixture { _dir: dir, cfg, out, journal, plan, engine, synced }
}

/// The video id of what `take` through `lane` hands out (`None`: nothing now).
async fn take(store: &mut JournalStore<'_>, lane: usize) -> Option<Work<()>> {
    let (mut summary, mut silent) = (Summary::default(), Silent);
    match store.take(lane, false, 0, &mut summary, &mut silent).await.unwrap() {
        Take::Work { work, .. } => Some(work),
        Take::Dry => None,
        Take::Settled | Take::Wait(_) => panic!("the local store neither settles nor waits in take"),
    }
}

async fn settle(store: &mut JournalStore<'_>, work: Work<()>, settled: Settled) {
    let (mut summary, mut silent) = (Summary::default(), Silent);
    store.settle(work, settled, &mut summary, &mut silent).await.unwrap();
}

fn charged() -> Charged {
    Charged { category: Category::Network, message: "reset".into(), bytes_fetched: 0 }
}

fn ids(works: &[Work<()>]) -> Vec<&str> {
    works.iter().map(|w| w.id.as_str()).collect()
}

#[tokio::test]
async fn clips_come_in_plan_order_with_those_that_went_back_first() {
    let mut f = fixture(&["a", "b", "c", "d", "e", "f"]).await;
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let scope = Scope::Plan(&f.plan);
    let mut store = JournalStore::new(&f.cfg, &f.out, &mut f.journal, f.engine.clone(), scope, stop).unwrap();
    let (mut summary, mut silent) = (Summary::default(), Silent);
    store.begin(&mut summary, &mut silent).await.unwrap();
    assert_eq!(summary.planned, 6);

    // New clips in plan order.
    let mut first = vec![take(&mut store, 0).await.unwrap(), take(&mut store, 0).await.unwrap()];
    assert_eq!(ids(&first), ["a", "b"]);
    let task: &Task = &first[0].task;
    assert_eq!((task.start, task.end, task.url.as_str()), (0.0, 10.0, "http://127.0.0.1:9/watch?v=a"));

    // A throttle gives `b` back, uncharged: it comes before every new clip.
    let b = first.pop().unwrap();
    let a = first.pop().unwrap();
    settle(&mut store, b, Settled::GiveBack).await;
    let b = take(&mut store, 0).await.unwrap();
    assert_eq!((b.id.as_str(), b.attempts), ("b", 0));

    // A retry waits out its delay: `a` is not handed out before it, and `next_due` says when.
    settle(&mut store, a, Settled::Retry { after: Duration::from_secs(3600), failure: charged() }).await;
    assert!(store.next_due().is_some_and(|t| t > Instant::now() + Duration::from_secs(3000)));
    let c = take(&mut store, 0).await.unwrap();
    assert_eq!(c.id, "c");

    // Geo-blocked through lane 0: `c` goes through other lanes only, and before the new clips there.
    settle(&mut store, c, Settled::Reroute { lane: 0, message: "blocked".into() }).await;
    let d = take(&mut store, 0).await.unwrap();
    assert_eq!(d.id, "d", "not `c`, blocked on lane 0");
    let c = take(&mut store, 1).await.unwrap();
    assert_eq!((c.id.as_str(), c.blocked_on.as_slice()), ("c", &[0][..]));

    // A retry come due comes first of all, then given-back clips (the latest first), then new ones.
    settle(&mut store, b, Settled::GiveBack).await;
    settle(&mut store, d, Settled::GiveBack).await;
    settle(&mut store, c, Settled::Retry { after: Duration::ZERO, failure: charged() }).await;
    let mut order = Vec::new();
    while let Some(work) = take(&mut store, 1).await {
        order.push(work);
    }
    assert_eq!(ids(&order), ["c", "d", "b", "e", "f"], "`a` still waits out its hour");
    assert!(!store.ready(), "nothing may be taken now");
    assert!(matches!(store.drained(true, &mut silent).await.unwrap(), Drained::No(_)), "`a` is still to come");

    // Done, failed for good or stopped: none comes back.
    let mut outcomes = order.into_iter();
    settle(&mut store, outcomes.next().unwrap(), Settled::Fail { failure: charged() }).await;
    settle(&mut store, outcomes.next().unwrap(), Settled::Cancelled).await;
    for work in outcomes {
        settle(&mut store, work, Settled::Done(Default::default())).await;
    }
    assert!(take(&mut store, 0).await.is_none());
    let mut end = Summary::default();
    store.end(&mut end, &mut silent).await.unwrap();
    assert_eq!(end.pending, 1, "`a`, waiting for its retry");
}

/// A plan just imported into an empty journal is not read back from it: the store it makes holds what the
/// same plan read back from the journal would, a file already at a clip's path included.
#[tokio::test]
async fn an_imported_plan_runs_as_the_same_plan_read_back_from_the_journal() {
    let mut f = fixture(&["a", "b", "c", "d"]).await;
    assert_eq!(f.synced, crate::journal::Synced { added: 4, imported_from: Some(1) });
    // A file where `c` goes, as a folder whose journal was lost has: checked before anything is fetched.
    let on_disk = f.out.clip_path(&f.plan.jobs[2].rel_path).unwrap();
    std::fs::create_dir_all(on_disk.parent().unwrap()).unwrap();
    std::fs::write(&on_disk, b"not checked yet").unwrap();
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let mut seen = vec![];
    for scope in [Scope::Imported { plan: &f.plan, first_id: 1 }, Scope::Plan(&f.plan)] {
        let store = JournalStore::new(&f.cfg, &f.out, &mut f.journal, f.engine.clone(), scope, stop.clone()).unwrap();
        let fresh: Vec<_> = store.fresh.iter().copied().collect();
        seen.push((fresh, store.on_disk.clone(), store.found.planned, store.plan_is_journal));
    }
    assert_eq!(seen[0], (vec![(1, 0), (2, 0), (4, 0)], vec![(3, 0)], 4, true));
    assert_eq!(seen[0], seen[1]);
}

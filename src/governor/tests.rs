//! Governor tests: lane choice, breakers across lanes, waiting.

use super::*;

const S: Duration = Duration::from_secs(1);

fn gov(n: usize, breaker: bool, rate: Option<f64>) -> Governor {
    let egresses =
        (0..n).map(|i| Egress { name: format!("127.0.0.{}", i + 2), route: Route::Default, cookies: None }).collect();
    Governor::new(
        egresses,
        Policy {
            breaker,
            learn_rate: breaker,
            cooldown: 10 * S,
            cooldown_cap: 100 * S,
            rate_per_hour: rate,
            jitter: 0.0,
            down_after: 3,
            down_cooloff: 15 * S,
            down_cooloff_cap: 300 * S,
        },
    )
}

#[test]
fn work_spreads_over_lanes() {
    let mut g = gov(3, true, None);
    let now = Instant::now();
    let mut used = vec![];
    for _ in 0..6 {
        let Pick::Lane { index, probe } = g.pick(now) else { panic!() };
        assert!(!probe);
        g.started(index, probe, now);
        used.push(index);
    }
    used.sort();
    assert_eq!(used, vec![0, 0, 1, 1, 2, 2]);
}

#[test]
fn a_throttled_lane_takes_nothing_until_its_probe() {
    let mut g = gov(2, true, None);
    let t0 = Instant::now();
    g.started(0, false, t0);
    g.started(0, false, t0);
    let opened = g.finished(0, false, Finish::Throttled { requests: 1, retry_after: None }, t0).unwrap();
    assert_eq!(opened.cooloff, 10 * S);
    // The other job that was running into the ban: no second cool-off; its 3 answered requests count.
    assert!(g.finished(0, false, Finish::Throttled { requests: 3, retry_after: None }, t0 + S).is_none());
    assert_eq!(g.wasted(), 4);
    for _ in 0..3 {
        assert_eq!(g.pick(t0 + 2 * S), Pick::Lane { index: 1, probe: false });
        g.started(1, false, t0 + 2 * S);
    }
    assert_eq!(g.pick(t0 + 10 * S), Pick::Lane { index: 0, probe: true });
    g.started(0, true, t0 + 10 * S);
    g.finished(0, true, Finish::Served, t0 + 11 * S);
    assert!(g.status_line(t0 + 11 * S).is_none());
}

#[test]
fn all_lanes_cooling_means_waiting_until_the_first_reopens() {
    let mut g = gov(2, true, None);
    let t0 = Instant::now();
    for i in 0..2 {
        g.started(i, false, t0);
        g.finished(i, false, Finish::Throttled { requests: 1, retry_after: None }, t0 + i as u32 * S);
    }
    assert_eq!(g.pick(t0 + 2 * S), Pick::Wait { until: Some(t0 + 10 * S) });
    assert_eq!(g.all_cooling_until(t0 + 2 * S), Some(t0 + 10 * S));
    let line = g.status_line(t0 + 2 * S).unwrap();
    assert!(line.contains("127.0.0.2 resumes in") && line.contains("127.0.0.3"), "{line}");
}

#[test]
fn without_breaker_throttles_only_count() {
    let mut g = gov(1, false, None);
    let t0 = Instant::now();
    g.started(0, false, t0);
    assert!(g.finished(0, false, Finish::Throttled { requests: 1, retry_after: None }, t0).is_none());
    assert_eq!(g.pick(t0), Pick::Lane { index: 0, probe: false });
    assert_eq!(g.all_cooling_until(t0), None);
}

#[test]
fn pacing_spreads_starts() {
    let mut g = gov(1, true, Some(360.0)); // one every 10 s
    let t0 = Instant::now();
    g.started(0, false, t0);
    assert_eq!(g.pick(t0 + S), Pick::Wait { until: Some(t0 + 10 * S) });
    assert_eq!(g.pick(t0 + 10 * S), Pick::Lane { index: 0, probe: false });
}

#[test]
fn restored_cooloffs_hold_across_runs() {
    let mut g = gov(1, true, None);
    let t0 = Instant::now();
    g.restore("127.0.0.2", t0 + 30 * S, 20 * S);
    assert_eq!(g.pick(t0), Pick::Wait { until: Some(t0 + 30 * S) });
}

#[test]
fn after_a_ban_jobs_ramp_up_from_one() {
    let mut g = gov(1, true, None);
    let t0 = Instant::now();
    // Sixteen jobs were out when the ban began: the doubling stops at eight.
    for _ in 0..16 {
        g.started(0, false, t0);
    }
    g.finished(0, false, Finish::Throttled { requests: 1, retry_after: None }, t0);
    for _ in 0..15 {
        g.finished(0, false, Finish::Throttled { requests: 1, retry_after: None }, t0);
    }
    assert_eq!(g.lanes[0].ceiling, Some(8));
    let reopen = t0 + 10 * S;
    assert_eq!(g.pick(reopen), Pick::Lane { index: 0, probe: true });
    g.started(0, true, reopen);
    g.finished(0, true, Finish::Served, reopen + S);
    // The probe worked: two at once now, not everything.
    for _ in 0..2 {
        let Pick::Lane { index, probe } = g.pick(reopen + S) else { panic!("lane refused") };
        assert!(!probe);
        g.started(index, probe, reopen + S);
    }
    assert_eq!(g.pick(reopen + S), Pick::Wait { until: None });
    g.finished(0, false, Finish::Served, reopen + 2 * S);
    g.finished(0, false, Finish::Served, reopen + 2 * S);
    // Each success doubles the limit, like TCP's slow start: 2 → 4 → 8, the ceiling.
    for _ in 0..8 {
        let Pick::Lane { index, probe } = g.pick(reopen + 2 * S) else { panic!("lane refused") };
        g.started(index, probe, reopen + 2 * S);
    }
    assert_eq!(g.pick(reopen + 2 * S), Pick::Wait { until: None });
    // Past the ceiling, one more job for every `limit` successes.
    for i in 0..8 {
        g.finished(0, false, Finish::Served, reopen + 3 * S);
        assert_eq!(g.lanes[0].limit, Some(if i < 7 { 8 } else { 9 }), "after {} successes", i + 1);
    }
}

#[test]
fn each_ban_halves_the_jobs_the_egress_ramps_back_to() {
    let mut g = gov(1, true, None);
    let mut now = Instant::now();
    // (jobs out when the ban begins, ceiling after it)
    for (out, ceiling) in [(8, 4), (4, 2), (2, 1), (1, 1)] {
        for _ in 0..out {
            g.started(0, false, now);
        }
        for _ in 0..out {
            g.finished(0, false, Finish::Throttled { requests: 1, retry_after: None }, now);
        }
        assert_eq!(g.lanes[0].ceiling, Some(ceiling), "{out} out");
        assert_eq!(g.lanes[0].limit, Some(1));
        now += 11 * S;
        assert_eq!(g.pick(now), Pick::Lane { index: 0, probe: true });
        g.started(0, true, now);
        g.finished(0, true, Finish::Served, now);
        // The probe's success: doubling below the ceiling, one more at it (after `limit` = 1 success).
        assert_eq!(g.lanes[0].limit, Some(2));
        now += S;
    }
}

#[test]
fn an_egress_that_reaches_nothing_k_times_in_a_row_is_down_and_the_other_takes_the_work() {
    let mut g = gov(2, true, None);
    let t0 = Instant::now();
    // Two failures, a success between: no outage (one clip's bad luck).
    assert!(g.finished(0, false, Finish::Unreachable, t0).is_none());
    assert!(g.finished(0, false, Finish::Unreachable, t0).is_none());
    assert!(g.finished(0, false, Finish::Served, t0).is_none());
    assert!(g.finished(0, false, Finish::Unreachable, t0).is_none());
    assert!(g.finished(0, false, Finish::Unreachable, t0).is_none());
    let opened = g.finished(0, false, Finish::Unreachable, t0 + S).expect("the third in a row opens");
    assert_eq!((opened.egress.as_str(), opened.cooloff), ("127.0.0.2", 15 * S));
    assert!(!g.network_down(), "the other egress still works");
    for _ in 0..3 {
        assert_eq!(g.pick(t0 + 2 * S), Pick::Lane { index: 1, probe: false });
        g.started(1, false, t0 + 2 * S);
    }
    assert_eq!(g.status_line(t0 + 6 * S).unwrap(), "throttled: 127.0.0.2 down, next probe in 10s");
}

#[test]
fn with_every_egress_down_the_line_says_the_network_is_down_and_a_probe_resumes() {
    let mut g = gov(1, true, None);
    let t0 = Instant::now();
    for _ in 0..3 {
        g.finished(0, false, Finish::Unreachable, t0);
    }
    assert!(g.network_down());
    assert_eq!(g.all_cooling_until(t0), Some(t0 + 15 * S));
    assert_eq!(g.status_line(t0 + 5 * S).unwrap(), "network down: 127.0.0.2 down, next probe in 10s");
    // The probe still reaches nothing: 30 s; the next one gets through and the egress takes work again.
    assert_eq!(g.pick(t0 + 15 * S), Pick::Lane { index: 0, probe: true });
    g.started(0, true, t0 + 15 * S);
    assert_eq!(g.finished(0, true, Finish::Unreachable, t0 + 16 * S).map(|o| o.cooloff), Some(30 * S));
    assert_eq!(g.pick(t0 + 46 * S), Pick::Lane { index: 0, probe: true });
    assert_eq!(g.down_time(t0 + 20 * S), 20 * S, "an outage still on counts until now");
    g.started(0, true, t0 + 46 * S);
    g.finished(0, true, Finish::Served, t0 + 47 * S);
    assert!(!g.network_down());
    // Down from the breaker opening to the probe that got through: down time, not time cooling off bans.
    assert_eq!(g.down_time(t0 + 100 * S), 47 * S);
    assert_eq!(g.cooled(), Duration::ZERO);
    assert_eq!(g.pick(t0 + 47 * S), Pick::Lane { index: 0, probe: false });
    assert!(g.status_line(t0 + 47 * S).is_none());
}

/// A job from before the ban still runs (its requests held at the gate, waiting for the probe): the ramp's
/// one job does not keep the probe out, the ban holds the lane's gate and cuts its rate, and the probe that
/// gets through lifts the hold.
#[tokio::test]
async fn the_probe_starts_beside_held_jobs_and_lifts_their_hold() {
    let mut g = gov(1, true, None);
    let t0 = Instant::now();
    g.started(0, false, t0);
    g.started(0, false, t0);
    // Twenty requests at once, then the ban: half the rate they went at.
    for _ in 0..20 {
        g.lanes[0].gate.wait(S, 1).await.unwrap();
    }
    let opened = g.finished(0, false, Finish::Throttled { requests: 1, retry_after: None }, Instant::now()).unwrap();
    assert!(opened.learned.is_some_and(|c| c.per_s > 0.0 && c.sent == 20), "{opened:?}");
    assert!(g.lanes[0].gate.wait(Duration::from_millis(10), 1).await.is_err(), "held while banned");
    let reopens = Instant::now() + opened.cooloff;
    assert_eq!(g.pick(reopens), Pick::Lane { index: 0, probe: true }, "the job still running must not keep it out");
    g.started(0, true, reopens);
    g.finished(0, true, Finish::Served, reopens);
    g.lanes[0].gate.wait(S, 1).await.expect("the probe got through: nothing held");
}

/// Clip starts count what running clips still need (issue 14): at 30 requests a minute (2 s apart), the
/// second clip fits beside the first (12 requests: 24 s, within `ROOM`), a third does not until the others
/// booked or released enough; bookings do not move that time, a clip that ends and releases what it did not
/// use does. The probe only waits its turn.
#[tokio::test]
async fn a_clip_starts_only_when_the_learned_rate_has_room_for_it_and_the_running_ones() {
    let mut g = gov(1, true, None);
    let t0 = Instant::now();
    g.restore_rate("127.0.0.2", 30.0, t0);
    let first = g.started(0, false, t0);
    assert_eq!(g.lanes[0].gate.owed(), rate::CLIP_REQUESTS);
    assert_eq!(g.pick(t0), Pick::Lane { index: 0, probe: false }, "12 requests go within 24 s");
    let second = g.started(0, false, t0);
    // 18 requests take 36 s: a third clip fits once 6 s of them are past.
    let Pick::Wait { until: Some(until) } = g.pick(t0) else { panic!("{:?}", g.pick(t0)) };
    // Within the test's own running time, and the rate's growth meanwhile (10% a minute).
    let near = |got: Instant, want: Duration| {
        let got = got.saturating_duration_since(t0).as_secs_f64();
        (got - want.as_secs_f64()).abs() < 0.5
    };
    assert!(near(until, 6 * S), "{:?}", until - t0);
    // The first clip's extraction books two: queued and owed, the end stays where it was.
    g.lanes[0].gate.for_clip(Some(&first)).wait(S, rate::EXTRACT_REQUESTS).await.unwrap();
    assert_eq!((first.left(), g.lanes[0].gate.owed()), (4, 10));
    let Pick::Wait { until: Some(until) } = g.pick(Instant::now()) else { panic!() };
    assert!(near(until, 6 * S), "{:?}", until - t0);
    // The second ends (held, failed, or fetched): what it did not book is released, and the third waits only
    // for the turn the first one's extraction left.
    second.release();
    drop(second);
    assert_eq!(g.lanes[0].gate.owed(), 4);
    let Pick::Wait { until: Some(until) } = g.pick(Instant::now()) else { panic!() };
    assert!(near(until, 4 * S), "{:?}", until - t0);
    assert_eq!(g.pick(t0 + 4 * S), Pick::Lane { index: 0, probe: false });
    // A dropped handle gives back what its clip still owed, as a release does.
    drop(first);
    assert_eq!(g.lanes[0].gate.owed(), 0);

    // A probe counts no demand: the requests owed may be held for it.
    let mut p = gov(1, true, None);
    let t1 = Instant::now();
    p.restore_rate("127.0.0.2", 3.0, t1);
    let _held = (0..3).map(|_| p.started(0, false, t1)).collect::<Vec<_>>();
    p.lanes[0].breaker.state = breaker::State::Open { until: t1 };
    assert_eq!(p.pick(t1), Pick::Lane { index: 0, probe: true });
}

/// One request waiting in lane 0's hold, as a clip of that egress would: returns once it is held.
async fn hold_one(g: &Governor) -> tokio::task::JoinHandle<Result<Instant, rate::HeldTooLong>> {
    let gate = g.lanes[0].gate.clone();
    let held = tokio::spawn(async move { gate.wait(Duration::from_secs(45), 1).await });
    for _ in 0..200 {
        if g.lanes[0].gate.holding() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(g.lanes[0].gate.holding(), 1);
    held
}

/// The held request is still waiting a while later.
async fn stays_held(held: &tokio::task::JoinHandle<Result<Instant, rate::HeldTooLong>>, why: &str) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!held.is_finished(), "{why}");
}

/// The held request gave up at once, sending nothing (its clip goes back uncharged).
async fn gives_up_at_once(held: tokio::task::JoinHandle<Result<Instant, rate::HeldTooLong>>) {
    let gave_up = tokio::time::timeout(Duration::from_secs(5), held).await.expect("given back at once").unwrap();
    assert_eq!(gave_up, Err(rate::HeldTooLong(Duration::ZERO)));
}

/// Clips held on a banned egress whose cool-off is over, with no clip left to be its probe (the end of a
/// run): they would wait out their bound (45 s) for a probe that never comes, so they give up at once and go
/// back uncharged. Before the cool-off ends, or with a clip left to probe it, they stay held.
#[tokio::test]
async fn held_requests_go_back_when_their_egress_is_due_a_probe_and_nothing_is_left_to_probe_it() {
    let mut g = gov(1, true, None);
    g.started(0, false, Instant::now());
    let opened = g.finished(0, false, Finish::Throttled { requests: 1, retry_after: None }, Instant::now()).unwrap();
    let reopens = Instant::now() + opened.cooloff;
    let held = hold_one(&g).await;
    // Still cooling off, or a clip left to probe with: it stays held.
    g.give_back_unprobed(Instant::now(), |_| true);
    g.give_back_unprobed(reopens, |_| false);
    stays_held(&held, "held while cooling off, and while a clip can still probe the egress").await;
    // The cool-off is over and nothing is left: it gives up at once, sending nothing.
    g.give_back_unprobed(reopens, |_| true);
    gives_up_at_once(held).await;
    assert_eq!(g.lanes[0].gate.holding(), 0);
    // The next hold is a hold again.
    assert!(g.lanes[0].gate.wait(Duration::from_millis(10), 1).await.is_err(), "still banned, still held");
}

/// The same with another egress free: clips held on an egress that still cools go back at once when nothing
/// is left to take and another egress would take work now, so that it runs them; with every egress banned
/// they stay held.
#[tokio::test]
async fn held_requests_go_back_when_another_egress_could_run_them() {
    let mut g = gov(2, true, None);
    let now = Instant::now();
    for lane in 0..2 {
        g.started(lane, false, now);
        g.finished(lane, false, Finish::Throttled { requests: 1, retry_after: None }, now).unwrap();
    }
    let held = hold_one(&g).await;
    // Both egresses cool: it stays held.
    g.give_back_unprobed(Instant::now(), |_| true);
    stays_held(&held, "held while every egress cools").await;
    // The other egress's breaker closes but its gate still holds: still held here.
    g.lanes[1].breaker.succeeded();
    g.give_back_unprobed(Instant::now(), |_| true);
    stays_held(&held, "held while the other egress holds its own requests").await;
    // The other egress takes work again: it goes back at once, though its own egress still cools.
    g.lanes[1].gate.reopened(Instant::now());
    g.give_back_unprobed(Instant::now(), |_| true);
    gives_up_at_once(held).await;
}

/// An egress whose relay met a 429 the breaker has not heard of yet (its breaker still closed) keeps its held
/// clips, whatever the other egresses do: it would take them straight back and hold them again.
#[tokio::test]
async fn held_requests_stay_on_an_egress_whose_breaker_has_not_opened() {
    let g = gov(2, true, None);
    g.lanes[0].gate.throttled(Instant::now(), Some(Duration::from_secs(30)));
    let held = hold_one(&g).await;
    g.give_back_unprobed(Instant::now(), |_| true);
    stays_held(&held, "its breaker is closed: the clip stays").await;
    held.abort();
}

/// The requests a ban held go at once when the probe's answer lifts the hold; if they meet a new ban, the job
/// that met it reports while the probe is still out. That signal opens the breaker again, doubled like a
/// failed probe's, and the probe's own end (served: its requests went before the new ban) does not close it.
/// The official CI run of 34ea9f9 met this: two clips started into the new ban once the probe closed it.
#[test]
fn a_ban_met_after_the_probe_lifted_the_hold_opens_the_breaker_again() {
    let mut g = gov(1, true, None);
    let t0 = Instant::now();
    g.started(0, false, t0);
    g.started(0, false, t0);
    assert_eq!(g.finished(0, false, Finish::Throttled { requests: 1, retry_after: None }, t0).unwrap().cooloff, 10 * S);
    let reopens = t0 + 10 * S;
    assert_eq!(g.pick(reopens), Pick::Lane { index: 0, probe: true });
    g.started(0, true, reopens);
    // The probe's watch page is answered: the hold lifts; the job from before the ban sends, and meets a ban.
    g.lanes[0].gate.reopened(reopens + S);
    g.lanes[0].gate.throttled(reopens + 2 * S, None);
    let opened = g.finished(0, false, Finish::Throttled { requests: 1, retry_after: None }, reopens + 2 * S);
    assert_eq!(opened.map(|o| o.cooloff), Some(20 * S), "a new ban: the cool-off doubles");
    assert_eq!(g.pick(reopens + 3 * S), Pick::Wait { until: Some(reopens + 22 * S) });
    g.finished(0, true, Finish::Served, reopens + 3 * S);
    assert_eq!(g.pick(reopens + 4 * S), Pick::Wait { until: Some(reopens + 22 * S) }, "the probe must not close it");
    assert_eq!(g.pick(reopens + 22 * S), Pick::Lane { index: 0, probe: true }, "the next cool-off has its probe");
    g.started(0, true, reopens + 22 * S);
    g.lanes[0].gate.reopened(reopens + 23 * S);
    g.finished(0, true, Finish::Served, reopens + 24 * S);
    assert_eq!(g.pick(reopens + 24 * S), Pick::Lane { index: 0, probe: false });
}

/// A job that met the ban before the probe's answer lifted the hold, and reports while the probe is out, is
/// from the ban the probe is testing: no second cool-off, and the probe, served, closes the breaker.
#[test]
fn a_signal_from_before_the_probe_answered_leaves_the_probe_to_close_the_breaker() {
    let mut g = gov(1, true, None);
    let t0 = Instant::now();
    g.started(0, false, t0);
    g.started(0, false, t0);
    g.lanes[0].gate.throttled(t0, None);
    g.finished(0, false, Finish::Throttled { requests: 1, retry_after: None }, t0).unwrap();
    let reopens = t0 + 10 * S;
    g.started(0, true, reopens);
    g.lanes[0].gate.reopened(reopens + S);
    assert!(g.finished(0, false, Finish::Throttled { requests: 1, retry_after: None }, reopens + 2 * S).is_none());
    g.finished(0, true, Finish::Served, reopens + 3 * S);
    assert_eq!(g.pick(reopens + 3 * S), Pick::Lane { index: 0, probe: false });
}

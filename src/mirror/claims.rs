//! Which wanted clips are still open, so that each is extracted by one tarball at a time and reported once.
//!
//! A clip is claimed when a tarball reaches it, then either placed, found bad, or released (stop, error).
//! K400's replacement tarball goes first; a bad copy there is not final, because a train part may still
//! hold a good one, so its verdict is deferred until every tarball has been read.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use super::report::Wanted;

#[derive(Debug, PartialEq)]
pub(crate) enum Claim {
    /// The caller wants it and nobody else holds it: extract it.
    Take(Wanted),
    /// Wanted, but already placed, reported bad or being extracted from another tarball.
    Duplicate,
    /// Not in `wanted` at all.
    Unmatched,
}

#[derive(Debug, Default)]
struct Inner {
    open: HashMap<String, Wanted>,
    held: HashMap<String, Wanted>,
    known: HashSet<String>,
    /// Clips bad in the replacement tarball that a train part may still provide: name → message.
    deferred_bad: HashMap<String, String>,
}

#[derive(Debug)]
pub(crate) struct Claims {
    inner: Mutex<Inner>,
}

/// What is left when every tarball has been read.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Leftover {
    /// Deferred bad verdicts that no later copy overturned.
    pub bad: Vec<(Wanted, String)>,
    /// Wanted clips no tarball held.
    pub unseen: u64,
}

impl Claims {
    pub fn new(wanted: HashMap<String, Wanted>) -> Claims {
        let known = wanted.keys().cloned().collect();
        Claims { inner: Mutex::new(Inner { open: wanted, known, ..Inner::default() }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere must not wedge every worker; the maps stay consistent between calls.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn claim(&self, name: &str) -> Claim {
        let mut inner = self.lock();
        match inner.open.remove(name) {
            Some(w) => {
                inner.held.insert(name.to_string(), w.clone());
                Claim::Take(w)
            }
            None if inner.known.contains(name) => Claim::Duplicate,
            None => Claim::Unmatched,
        }
    }

    /// Gives a claimed clip back untouched (stopped, or the tarball failed before its verdict).
    pub fn release(&self, name: &str) {
        let mut inner = self.lock();
        if let Some(w) = inner.held.remove(name) {
            inner.open.insert(name.to_string(), w);
        }
    }

    pub fn placed(&self, name: &str) {
        let mut inner = self.lock();
        inner.held.remove(name);
        inner.deferred_bad.remove(name);
    }

    /// Records a bad copy. Returns true when the verdict is final and should be reported now.
    pub fn bad(&self, name: &str, deferrable: bool, message: &str) -> bool {
        let mut inner = self.lock();
        let Some(w) = inner.held.remove(name) else {
            return false;
        };
        if deferrable {
            inner.open.insert(name.to_string(), w);
            inner.deferred_bad.insert(name.to_string(), message.to_string());
            false
        } else {
            inner.deferred_bad.remove(name);
            true
        }
    }

    /// True if any of `names` is still open (a tarball holding them is worth downloading).
    pub fn any_open<'a>(&self, mut names: impl Iterator<Item = &'a str>) -> bool {
        let inner = self.lock();
        names.any(|n| inner.open.contains_key(n))
    }

    pub fn is_known(&self, name: &str) -> bool {
        self.lock().known.contains(name)
    }

    pub fn leftover(&self) -> Leftover {
        let inner = self.lock();
        let mut bad: Vec<(Wanted, String)> = inner
            .deferred_bad
            .iter()
            .filter_map(|(name, msg)| inner.open.get(name).map(|w| (w.clone(), msg.clone())))
            .collect();
        bad.sort_by_key(|(w, _)| w.clip_id);
        let unseen = inner.open.keys().filter(|n| !inner.deferred_bad.contains_key(*n)).count() as u64;
        Leftover { bad, unseen }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(names: &[&str]) -> HashMap<String, Wanted> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let w = Wanted { clip_id: i as i64, dest: format!("/out/{n}").into(), expected_duration: 10.0 };
                (n.to_string(), w)
            })
            .collect()
    }

    #[test]
    fn each_clip_is_taken_once() {
        let c = Claims::new(wanted(&["a.mp4", "b.mp4"]));
        assert!(matches!(c.claim("a.mp4"), Claim::Take(w) if w.clip_id == 0));
        assert_eq!(c.claim("a.mp4"), Claim::Duplicate);
        assert_eq!(c.claim("z.mp4"), Claim::Unmatched);
        c.release("a.mp4");
        assert!(matches!(c.claim("a.mp4"), Claim::Take(_)));
        c.placed("a.mp4");
        assert_eq!(c.claim("a.mp4"), Claim::Duplicate);
        assert!(c.any_open(["x", "b.mp4"].into_iter()));
        assert!(!c.any_open(["a.mp4", "x"].into_iter()));
        assert_eq!(c.leftover(), Leftover { bad: vec![], unseen: 1 });
    }

    #[test]
    fn deferred_bad_is_overturned_by_a_good_copy_or_reported_at_the_end() {
        let c = Claims::new(wanted(&["fixed.mp4", "still.mp4", "twice.mp4"]));
        for name in ["fixed.mp4", "still.mp4", "twice.mp4"] {
            assert!(matches!(c.claim(name), Claim::Take(_)));
            assert!(!c.bad(name, true, "bad in replacement"), "deferred verdicts are not reported at once");
        }
        assert!(matches!(c.claim("fixed.mp4"), Claim::Take(_)));
        c.placed("fixed.mp4");
        assert!(matches!(c.claim("twice.mp4"), Claim::Take(_)));
        assert!(c.bad("twice.mp4", false, "bad in train"));
        let left = c.leftover();
        assert_eq!(left.unseen, 0);
        assert_eq!(left.bad.len(), 1);
        assert_eq!(left.bad[0].0.clip_id, 1);
        assert_eq!(left.bad[0].1, "bad in replacement");
    }
}

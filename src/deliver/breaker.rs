//! The circuit breaker of a send: when the relay cannot be reached, every
//! worker pauses instead of failing its recipient; after an exponential,
//! capped, jittered wait one worker probes; after the outage has lasted
//! `transport.outage_wait_seconds` the run gives up, leaving the rest
//! pending for the next run.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The longest pause between two probes of a relay that is down.
const MAX_PAUSE: Duration = Duration::from_secs(30);

/// What a worker may do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit {
    /// Send; `probe` when this worker is the one testing a relay that was
    /// down (the others wait for its answer).
    Go {
        /// This worker probes.
        probe: bool,
    },
    /// Wait until then (or until woken), then ask again; `None` while a
    /// probe is out.
    Wait(Option<Instant>),
    /// The outage outlasted the wait: stop the run, for this reason.
    GiveUp(String),
}

#[derive(Debug, Default)]
struct State {
    /// Open (paused) until then; `None` when closed.
    open_until: Option<Instant>,
    /// A worker is probing.
    probing: bool,
    /// Trips in this outage, for the backoff.
    trips: u32,
    /// When this outage began.
    since: Option<Instant>,
    /// The last transport error.
    reason: String,
}

/// One send's breaker (shared by its workers).
#[derive(Debug)]
pub struct Breaker {
    state: Mutex<State>,
    base: Duration,
    limit: Duration,
}

impl Breaker {
    /// A closed breaker: pauses start at `base` (doubling, capped at 30 s,
    /// ±50 % jitter); an outage longer than `limit` ends the run.
    pub fn new(base: Duration, limit: Duration) -> Self {
        Self {
            state: Mutex::new(State::default()),
            base: base.max(Duration::from_millis(1)),
            limit,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A worker that panicked holding it left nothing half-done here.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a worker may send at `now`.
    pub fn admit(&self, now: Instant) -> Admit {
        let mut st = self.state();
        let Some(until) = st.open_until else {
            return Admit::Go { probe: false };
        };
        if let Some(since) = st.since
            && now >= since + self.limit
        {
            return Admit::GiveUp(st.reason.clone());
        }
        if st.probing {
            return Admit::Wait(None);
        }
        if now >= until {
            st.probing = true;
            return Admit::Go { probe: true };
        }
        let deadline = st.since.map_or(until, |s| until.min(s + self.limit));
        Admit::Wait(Some(deadline))
    }

    /// Whether the relay is taken to be up (no pause, no probe out).
    pub fn is_closed(&self) -> bool {
        let st = self.state();
        st.open_until.is_none() && !st.probing
    }

    /// The probe found nothing to send: another worker may probe.
    pub fn cancel_probe(&self) {
        self.state().probing = false;
    }

    /// The transport answered (a reply of any kind, or a local outbox):
    /// closes the breaker. Returns how long the outage lasted, if one was
    /// going on.
    pub fn success(&self, now: Instant) -> Option<Duration> {
        let mut st = self.state();
        st.open_until?;
        let lasted = st.since.map(|s| now.saturating_duration_since(s));
        *st = State::default();
        lasted
    }

    /// The relay could not be reached at `now`: opens (or keeps open) the
    /// breaker. Returns the pause before the next probe, and how long the
    /// outage has lasted.
    pub fn trip(&self, reason: &str, now: Instant) -> (Duration, Duration) {
        let mut st = self.state();
        let since = *st.since.get_or_insert(now);
        st.reason = reason.to_string();
        // Workers whose sends were already under way when the relay went
        // down trip it again at once; only a failed probe (or the first
        // failure) lengthens the pause.
        if st.probing || st.open_until.is_none_or(|u| now >= u) {
            st.trips += 1;
            let pause = pause(self.base, st.trips);
            st.open_until = Some(now + pause);
        }
        st.probing = false;
        let left = st
            .open_until
            .map_or(Duration::ZERO, |u| u.saturating_duration_since(now));
        (left, now - since)
    }
}

/// Exponential in the number of trips, capped, with ±50 % jitter so that
/// many senders behind one relay do not come back in step.
fn pause(base: Duration, trips: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << trips.saturating_sub(1).min(16));
    let jitter: f64 = rand::random_range(0.5..1.5);
    exp.min(MAX_PAUSE).mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trip_pauses_everyone_then_one_probe_closes_it() {
        let b = Breaker::new(Duration::from_millis(100), Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(b.admit(t0), Admit::Go { probe: false });
        let (pause, lasted) = b.trip("refused", t0);
        assert!(pause >= Duration::from_millis(50) && pause <= Duration::from_millis(150));
        assert_eq!(lasted, Duration::ZERO);
        assert!(matches!(b.admit(t0), Admit::Wait(Some(_))));
        // Past the pause one worker probes; the others wait for its answer.
        let later = t0 + Duration::from_millis(200);
        assert_eq!(b.admit(later), Admit::Go { probe: true });
        assert_eq!(b.admit(later), Admit::Wait(None));
        assert_eq!(b.success(later), Some(Duration::from_millis(200)));
        assert_eq!(b.admit(later), Admit::Go { probe: false });
        assert_eq!(b.success(later), None);
    }

    #[test]
    fn a_failed_probe_doubles_the_pause_and_the_limit_gives_up() {
        let b = Breaker::new(Duration::from_secs(1), Duration::from_secs(10));
        let t0 = Instant::now();
        b.trip("connection refused", t0);
        // Workers that were already sending trip it again: no longer pause.
        let (again, _) = b.trip("connection refused", t0);
        assert!(again <= Duration::from_millis(1500), "{again:?}");
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(b.admit(t1), Admit::Go { probe: true });
        let (second, lasted) = b.trip("connection refused", t1);
        assert!(second >= Duration::from_secs(1), "{second:?}");
        assert_eq!(lasted, Duration::from_secs(2));
        assert_eq!(
            b.admit(t0 + Duration::from_secs(10)),
            Admit::GiveUp("connection refused".into())
        );
    }

    #[test]
    fn pauses_grow_and_stay_capped() {
        let base = Duration::from_millis(100);
        assert!(pause(base, 1) <= Duration::from_millis(150));
        assert!(pause(base, 4) >= Duration::from_millis(400));
        assert!(pause(base, 30) <= MAX_PAUSE.mul_f64(1.5));
    }
}

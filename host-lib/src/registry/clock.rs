//! The registry's clock, injectable so that tests control time.

use std::sync::Mutex;

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

/// A source of the current instant.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> OffsetDateTime;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that only moves when told to (for tests and replays).
#[derive(Debug)]
pub struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    /// A clock standing at `at`.
    pub fn new(at: OffsetDateTime) -> ManualClock {
        ManualClock(Mutex::new(at))
    }

    /// Moves the clock to `at`.
    pub fn set(&self, at: OffsetDateTime) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *t += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> OffsetDateTime {
        (**self).now()
    }
}

/// Instants are stored as RFC 3339 UTC text with whole seconds (`2026-01-10T08:30:00Z`), which
/// sorts in time order.
pub fn format_instant(t: OffsetDateTime) -> String {
    let t = t
        .to_offset(UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

/// Parses what [`format_instant`] wrote (any RFC 3339 offset is accepted).
pub fn parse_instant(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn instants_round_trip_in_utc() {
        let t = datetime!(2026-01-10 16:30:05.123 +8);
        let s = format_instant(t);
        assert_eq!(s, "2026-01-10T08:30:05Z");
        assert_eq!(parse_instant(&s), Some(datetime!(2026-01-10 08:30:05 UTC)));
    }

    #[test]
    fn manual_clock_moves_when_told() {
        let c = ManualClock::new(datetime!(2026-01-10 00:00 UTC));
        c.advance(Duration::hours(2));
        assert_eq!(c.now(), datetime!(2026-01-10 02:00 UTC));
        c.set(datetime!(2027-01-01 00:00 UTC));
        assert_eq!(c.now(), datetime!(2027-01-01 00:00 UTC));
    }
}

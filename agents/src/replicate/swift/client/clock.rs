//! [`ClusterClock`]: a Swift cluster's clock as its answers show it. Swift
//! stamps every object with its proxy's clock (the listing's
//! `last_modified`, `X-Timestamp`); a lag or a cut-off computed from the
//! agent's own clock against those stamps is off by however far the two
//! clocks are apart — an agent 60 s behind its Swift reported a lag 60 s
//! short, and `max_lag_on_failover` trusted a standby further behind than
//! allowed. Every answer's `Date` header (HTTP-date, whole seconds) gives
//! the cluster's time when it was sent; the offset to this host's clock is
//! kept (the latest answer's, plus half a second: `Date` is truncated), and
//! [`ClusterClock::now`] is this host's time moved by it. Before any
//! answer, and for an answer without `Date`, this host's time.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Default)]
pub(crate) struct ClusterClock {
    /// The cluster's time minus this host's, in milliseconds.
    offset_ms: AtomicI64,
    seen: AtomicBool,
}

fn signed_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

impl ClusterClock {
    /// Notes an answer's `Date` header, received now.
    pub(crate) fn note(&self, headers: &reqwest::header::HeaderMap) {
        let Some(date) = headers
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
        else {
            return;
        };
        let offset = signed_ms(date) + 500 - signed_ms(SystemTime::now());
        self.offset_ms.store(offset, Ordering::Relaxed);
        self.seen.store(true, Ordering::Relaxed);
    }

    /// The cluster's time now, as far as its answers tell.
    pub(crate) fn now(&self) -> SystemTime {
        let here = SystemTime::now();
        if !self.seen.load(Ordering::Relaxed) {
            return here;
        }
        let offset = self.offset_ms.load(Ordering::Relaxed);
        let by = Duration::from_millis(offset.unsigned_abs());
        if offset >= 0 {
            here.checked_add(by).unwrap_or(here)
        } else {
            here.checked_sub(by).unwrap_or(here)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(t: SystemTime) -> reqwest::header::HeaderMap {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            reqwest::header::DATE,
            httpdate::fmt_http_date(t).parse().unwrap(),
        );
        h
    }

    #[test]
    fn the_clock_follows_the_answers_date_either_way() {
        let c = ClusterClock::default();
        let ahead = |c: &ClusterClock| signed_ms(c.now()) - signed_ms(SystemTime::now());
        assert!(ahead(&c).abs() < 50, "no answer yet: this host's clock");
        c.note(&date(SystemTime::now() + Duration::from_secs(3600)));
        let a = ahead(&c);
        assert!((3_599_000..=3_601_000).contains(&a), "{a}");
        c.note(&date(SystemTime::now() - Duration::from_secs(60)));
        let a = ahead(&c);
        assert!((-61_000..=-59_000).contains(&a), "{a}");
        // An answer without a date changes nothing.
        c.note(&reqwest::header::HeaderMap::new());
        let a = ahead(&c);
        assert!((-61_000..=-59_000).contains(&a), "{a}");
    }
}

//! Durations in the config: humantime text (`"250ms"`, `"30s"`, `"4h"`),
//! bounded so that the runtime can add any of them to a clock and double it
//! without overflow (`step_timeout = "300000000000y"` once passed
//! `check-config` and then panicked the first failover).

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The longest duration a setting takes: 10 years.
pub const MAX: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

fn bounded<E: serde::de::Error>(d: Duration) -> Result<Duration, E> {
    if d > MAX {
        return Err(E::custom(format!(
            "a duration of {} is too long; at most \"3650days\" (10 years)",
            humantime::format_duration(d)
        )));
    }
    Ok(d)
}

/// `#[serde(with = "duration")]` for a required or defaulted duration.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let v: humantime_serde::Serde<Duration> = Deserialize::deserialize(d)?;
    bounded(v.into_inner())
}

/// `#[serde(with = "duration::option")]` for an optional one.
pub mod option {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let v: Option<humantime_serde::Serde<Duration>> = Deserialize::deserialize(d)?;
        v.map(|v| bounded(v.into_inner())).transpose()
    }
}

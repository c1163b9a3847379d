//! `[detection]`: the timings and guards of DESIGN §3, with their defaults.

use super::*;

/// `[detection]`: timings and guards of DESIGN §3.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Detection {
    /// One detection round; also the default report and probe interval.
    #[serde(
        default = "default_interval",
        deserialize_with = "duration::deserialize"
    )]
    pub interval: Duration,
    /// Consecutive down rounds before a site is confirmed down.
    #[serde(default = "default_fall")]
    pub fall: u32,
    /// Consecutive healthy rounds before a site counts as recovered.
    #[serde(default = "default_rise")]
    pub rise: u32,
    /// Unbroken health needed (besides `rise`) before failback.
    #[serde(
        default = "default_hold_down",
        deserialize_with = "duration::deserialize"
    )]
    pub hold_down: Duration,
    /// An agent whose last report is older than this is stale.
    #[serde(
        default = "default_agent_timeout",
        deserialize_with = "duration::deserialize"
    )]
    pub agent_timeout: Duration,
    /// Timeout of one external or peer probe.
    #[serde(
        default = "default_probe_timeout",
        deserialize_with = "duration::deserialize"
    )]
    pub probe_timeout: Duration,
    /// Automatic failovers allowed per group per `failover_window`.
    #[serde(default = "default_max_failovers")]
    pub max_failovers: u32,
    /// Window of the failover budget.
    #[serde(
        default = "default_failover_window",
        deserialize_with = "duration::deserialize"
    )]
    pub failover_window: Duration,
}

impl Default for Detection {
    fn default() -> Self {
        Self {
            interval: default_interval(),
            fall: default_fall(),
            rise: default_rise(),
            hold_down: default_hold_down(),
            agent_timeout: default_agent_timeout(),
            probe_timeout: default_probe_timeout(),
            max_failovers: default_max_failovers(),
            failover_window: default_failover_window(),
        }
    }
}

fn default_interval() -> Duration {
    Duration::from_millis(500)
}
fn default_fall() -> u32 {
    3
}
fn default_rise() -> u32 {
    3
}
fn default_hold_down() -> Duration {
    Duration::from_secs(30)
}
fn default_agent_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_probe_timeout() -> Duration {
    Duration::from_millis(500)
}
fn default_max_failovers() -> u32 {
    2
}
fn default_failover_window() -> Duration {
    Duration::from_secs(3600)
}

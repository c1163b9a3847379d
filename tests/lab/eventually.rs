//! Polling instead of sleeping: wait for a condition with a deadline and
//! report what was last seen when it never came true.

use std::time::{Duration, Instant};

use anyhow::Result;

/// `timeout` stretched by `WARDEN_TEST_PATIENCE` (a factor, default 1): a
/// slow or loaded machine raises it instead of every bound in every test.
pub(crate) fn patient(timeout: Duration) -> Duration {
    let factor = std::env::var("WARDEN_TEST_PATIENCE")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|f| f.is_finite() && *f >= 1.0)
        .unwrap_or(1.0);
    timeout.mul_f64(factor)
}

/// Calls `f` every `interval` until it returns `Ok`, for at most `timeout`
/// (× [`patient`]; at least once). On timeout returns the last error, with
/// the number of attempts and the timeout as context.
pub(crate) fn eventually<T>(
    timeout: Duration,
    interval: Duration,
    mut f: impl FnMut() -> Result<T>,
) -> Result<T> {
    let timeout = patient(timeout);
    let start = Instant::now();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if start.elapsed() >= timeout => {
                return Err(e.context(format!(
                    "still failing after {:.1?} ({attempts} attempts)",
                    start.elapsed()
                )))
            }
            Err(_) => std::thread::sleep(interval.min(timeout.saturating_sub(start.elapsed()))),
        }
    }
}

/// `assert_eventually!(cond, timeout)` or
/// `assert_eventually!(cond, timeout, "format {}", args)`: re-evaluates the
/// boolean `cond` every 50 ms and panics with the message if it is still
/// false after `timeout` (a `Duration`).
macro_rules! assert_eventually {
    ($cond:expr, $timeout:expr $(,)?) => {
        $crate::lab::assert_eventually!($cond, $timeout, "{}", stringify!($cond))
    };
    ($cond:expr, $timeout:expr, $($arg:tt)+) => {{
        let timeout: ::std::time::Duration = $crate::lab::patient($timeout);
        let start = ::std::time::Instant::now();
        loop {
            if $cond {
                break;
            }
            if start.elapsed() >= timeout {
                panic!(
                    "assert_eventually: not true within {:?}: {}",
                    timeout,
                    format_args!($($arg)+)
                );
            }
            ::std::thread::sleep(::std::time::Duration::from_millis(50));
        }
    }};
}
pub(crate) use assert_eventually;

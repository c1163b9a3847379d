//! A watch on the wall clock ([`ClockSet`]): whether it was set since a
//! moment (the change journal's marks: a file's ctime cannot be read
//! against a mark taken before the clock was set).

/// Whether the wall clock was set (stepped, either way) since this was
/// made: a `timerfd` on `CLOCK_REALTIME` armed ten years ahead with
/// `TFD_TIMER_CANCEL_ON_SET`, whose read fails with `ECANCELED` once the
/// clock was set (timerfd_create(2)). A clock set back and then forward
/// again between a mark and its read leaves no trace the elapsed time can
/// show, while a file changed meanwhile is stamped in the past.
pub(crate) struct ClockSet {
    fd: rustix::fd::OwnedFd,
    /// The kernel says it once; kept.
    seen: std::sync::atomic::AtomicBool,
}

impl ClockSet {
    pub(crate) fn arm() -> std::io::Result<ClockSet> {
        use rustix::time::{
            timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags,
            TimerfdTimerFlags, Timespec,
        };
        let fd = timerfd_create(
            TimerfdClockId::Realtime,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
        let far = Timespec {
            tv_sec: now.tv_sec.saturating_add(10 * 365 * 86_400),
            tv_nsec: 0,
        };
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        timerfd_settime(
            &fd,
            TimerfdTimerFlags::ABSTIME | TimerfdTimerFlags::CANCEL_ON_SET,
            &Itimerspec {
                it_interval: zero,
                it_value: far,
            },
        )?;
        Ok(ClockSet {
            fd,
            seen: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Whether the wall clock was set since [`ClockSet::arm`]; an error
    /// the kernel gives reads as set (the journal then cannot tell).
    pub(crate) fn was_set(&self) -> bool {
        use std::sync::atomic::Ordering;
        if self.seen.load(Ordering::SeqCst) {
            return true;
        }
        let mut buf = [0u8; 8];
        let set = match rustix::io::read(&self.fd, &mut buf) {
            Err(rustix::io::Errno::AGAIN) => false,
            // Expired: ten years passed on the wall clock.
            Ok(_) => false,
            Err(_) => true,
        };
        if set {
            self.seen.store(true, Ordering::SeqCst);
        }
        set
    }
}

//! The running-task guard every continuous replicator shares: one background
//! task (and whatever must live as long as it, e.g. an inotify watcher) with
//! its cancel token. A start holds the slot for its whole set-up, so two
//! starts never race; a stop cancels the task and waits for it; dropping the
//! replicator cancels it.

use tokio::sync::{Mutex, MutexGuard};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

struct Running<X> {
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
    /// Lives as long as the task (dropped after it stopped).
    _keep: X,
}

/// One replicator's background task, if it runs.
pub(crate) struct TaskSlot<X = ()> {
    inner: Mutex<Option<Running<X>>>,
}

/// The slot, held for the duration of a start.
pub(crate) struct SlotGuard<'a, X>(MutexGuard<'a, Option<Running<X>>>);

impl<X> Default for TaskSlot<X> {
    fn default() -> Self {
        TaskSlot {
            inner: Mutex::new(None),
        }
    }
}

impl<X> TaskSlot<X> {
    /// Hold the slot (a start sets it up while no other start or stop runs).
    pub(crate) async fn lock(&self) -> SlotGuard<'_, X> {
        SlotGuard(self.inner.lock().await)
    }

    /// Cancel the task and wait for it to end; whether one was running.
    pub(crate) async fn stop(&self) -> bool {
        let r = self.inner.lock().await.take();
        match r {
            Some(r) => {
                r.cancel.cancel();
                if let Some(t) = r.task {
                    let _ = t.await;
                }
                true
            }
            None => false,
        }
    }

    /// From `Drop`: cancel without waiting (if no start or stop holds the slot).
    pub(crate) fn cancel_now(&self) {
        if let Ok(r) = self.inner.try_lock() {
            if let Some(r) = r.as_ref() {
                r.cancel.cancel();
            }
        }
    }
}

impl<X> SlotGuard<'_, X> {
    /// A task runs (not cancelled, not finished).
    pub(crate) fn is_running(&self) -> bool {
        self.0.as_ref().is_some_and(|r| {
            !r.cancel.is_cancelled() && r.task.as_ref().is_none_or(|t| !t.is_finished())
        })
    }

    /// Record the task that now runs (`task: None` when there is only a token).
    pub(crate) fn set(&mut self, cancel: CancellationToken, task: Option<JoinHandle<()>>, keep: X) {
        *self.0 = Some(Running {
            cancel,
            task,
            _keep: keep,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_cancels_and_waits() {
        let slot: TaskSlot = TaskSlot::default();
        assert!(!slot.lock().await.is_running());
        let cancel = CancellationToken::new();
        let c2 = cancel.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            c2.cancelled().await;
            let _ = tx.send(());
        });
        slot.lock().await.set(cancel, Some(task), ());
        assert!(slot.lock().await.is_running());
        assert!(slot.stop().await);
        rx.await.unwrap();
        assert!(!slot.stop().await, "nothing runs any more");
    }
}

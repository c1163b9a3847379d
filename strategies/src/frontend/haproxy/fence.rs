//! The epoch fence kept in HAProxy's `proc.warden_route.<group>` variable:
//! what this driver wrote (judged by when HAProxy lost it), whether an
//! order may go ahead ([`Inner::fence_admits`], `judge`), and the check and
//! write before each server is touched ([`Inner::fence_holds`]).

use tracing::warn;

use super::parse::Fence;
use super::Inner;
use crate::StrategyError;

impl Inner {
    /// The highest route this driver wrote (see `Inner::written`).
    fn written(&self) -> Option<Fence> {
        self.written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Remember that HAProxy's fence holds (`epoch`, `site`) by this driver's order.
    fn remember(&self, epoch: u64, site: &str) {
        let mut w = self.written.lock().unwrap_or_else(|p| p.into_inner());
        if w.as_ref().is_none_or(|f| f.epoch < epoch) {
            *w = Some(Fence {
                epoch,
                site: site.to_string(),
            });
        }
    }

    /// Whether an order for `site` at `epoch` may go ahead by the fence in
    /// HAProxy now: an error for an older epoch or another site at the same
    /// one; `Ok(true)` when the fence already says (`epoch`, `site`),
    /// `Ok(false)` when it is older or not set (to be written).
    ///
    /// HAProxy forgets the fence when it restarts or reloads. A fence found
    /// missing, or below the highest one this driver wrote, was lost that
    /// way (and perhaps written again since by an older writer): the order
    /// is judged by what this driver wrote, and an order that fails that
    /// test writes it back before it is refused, so that the next older
    /// order — another process's too — is refused by HAProxy itself.
    pub(super) async fn fence_admits(&self, epoch: u64, site: &str) -> Result<bool, StrategyError> {
        let held = self.read_fence().await?;
        let fence = match (held, self.written()) {
            (held, Some(w)) if held.as_ref().is_none_or(|h| h.epoch < w.epoch) => {
                let refused = epoch < w.epoch || (epoch == w.epoch && w.site != site);
                warn!(
                    group = %self.settings.group,
                    frontend = %self.settings.frontend,
                    held = %held.as_ref().map_or("none".to_string(), |h| format!("{}:{}", h.epoch, h.site)),
                    written = %format!("{}:{}", w.epoch, w.site),
                    "HAProxy lost warden's fence (restarted or reloaded?): judging the order by the fence this orchestrator wrote{}",
                    if refused { ", and writing it back" } else { "" }
                );
                if refused {
                    self.write_fence(w.epoch, &w.site).await?;
                }
                // Not HAProxy's: whatever the order, its fence is written.
                return self.judge(epoch, site, &w).map(|_| false);
            }
            (None, _) => return Ok(false),
            (Some(h), _) => h,
        };
        self.judge(epoch, site, &fence)
    }

    /// An order for `site` at `epoch` against `fence`: an error for an
    /// older epoch or another site at the same one, else whether the fence
    /// already says (`epoch`, `site`).
    fn judge(&self, epoch: u64, site: &str, fence: &Fence) -> Result<bool, StrategyError> {
        if epoch < fence.epoch {
            return Err(StrategyError::StaleEpoch {
                element: self.element.clone(),
                sent: epoch,
                seen: fence.epoch,
            });
        }
        if epoch == fence.epoch && fence.site != site {
            return Err(StrategyError::EpochTaken {
                element: self.element.clone(),
                epoch,
                reason: format!(
                    "conflicting decision for epoch {epoch}: group {} already routes to {:?} at this epoch, refused {site:?}",
                    self.settings.group, fence.site
                ),
            });
        }
        Ok(epoch == fence.epoch)
    }

    /// Before a server of a route at (`epoch`, `site`) is touched: the fence
    /// this route wrote still stands. HAProxy's variables have no
    /// compare-and-set, so a newer route written meanwhile (by the current
    /// leader while this one — perhaps a deposed leader's late call — was
    /// between commands) ends this one with an error here, before it
    /// touches a server; a fence found older than this route (an older
    /// writer's late fence, or none: HAProxy restarted) is written again.
    /// What is left is a race within one command's round trip, which the
    /// newer route's own checks and reconciliation repair.
    pub(super) async fn fence_holds(&self, epoch: u64, site: &str) -> Result<(), StrategyError> {
        if !self.fence_admits(epoch, site).await? {
            self.write_fence(epoch, site).await?;
        }
        self.remember(epoch, site);
        Ok(())
    }
}

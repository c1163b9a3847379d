//! What a `noip` / `dyndns2` provider does as a [`DnsProvider`]: `publish`
//! decides what is pending (the epoch fence, the stops, what was confirmed,
//! refused or failed recently) and sends one update; `observe`, `alerts`
//! and `clear` read and lift the provider's state.

use async_trait::async_trait;
use tracing::{debug, info};

use super::{parse_answer, quote, Class, DyndnsProvider, MAX_ANSWER};
use crate::dns::{DnsProvider, ProviderView, RecordValue};
use crate::{Epoch, StrategyError};

impl DyndnsProvider {
    /// Send one update of `pending` to `value` (the decision of `epoch`
    /// for `site`) and settle its answer.
    async fn send_update(
        &self,
        pending: &[String],
        site: &str,
        value: &RecordValue,
        epoch: Epoch,
    ) -> Result<(), StrategyError> {
        // After the wait for an update in flight: the caller may no longer act.
        crate::gate::check(&self.element)?;
        {
            let mut st = self.lock();
            st.sent_epoch = st.sent_epoch.max(epoch);
        }
        let url = self.update_url(pending, value);
        debug!(group = %self.group, server = %self.element, hosts = %pending.join(","), to = %value, epoch, site, "sending DNS update");
        let resp = self
            .client
            .get(url)
            .basic_auth(&self.user, Some(self.password.expose()))
            .header(reqwest::header::USER_AGENT, &self.user_agent)
            .send()
            .await
            .map_err(|e| self.unanswered(pending, self.transport_error(&e)))?;
        let status = resp.status();
        // Where a redirect points, by origin only: a server that sends
        // plain HTTP to HTTPS echoes the request's path and query, and a
        // token in the update URL's query would follow it into the error.
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| resp.url().join(l).ok())
            .map(|u| u.origin().ascii_serialization())
            .filter(|o| o != "null");
        // An answer is a line per name: anything longer is not one, and
        // is not read into memory whole.
        let body = match crate::capped::body(resp, MAX_ANSWER).await {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(crate::capped::Capped::Transport(e)) => {
                return Err(self.unanswered(pending, self.transport_error(&e)))
            }
            Err(crate::capped::Capped::TooLong) => {
                return Err(self.unanswered(pending, self.rejected(format!(
                    "the answer to an update of {} (HTTP {}) is longer than {MAX_ANSWER} bytes: not a {} update server?",
                    pending.join(", "),
                    status.as_u16(),
                    self.flavor.label()
                ))))
            }
        };
        if !status.is_success() {
            // Some servers put a return code in a 401/5xx body: honour it.
            if let Ok(lines) = parse_answer(&body, pending.len(), self.flavor) {
                if lines.iter().all(|l| l.code.class() != Class::Success) {
                    return self.settle(pending, value, epoch, &lines, &body);
                }
            }
            let e = self.status_error(status, &body, location);
            // A 5xx may come after the update was applied (a proxy that
            // gave up waiting); a refusal (3xx, 4xx) was not carried out.
            return Err(if status.is_server_error() {
                self.unanswered(pending, e)
            } else {
                e
            });
        }
        let lines = parse_answer(&body, pending.len(), self.flavor).map_err(|why| {
            self.unanswered(pending, self.rejected(format!(
                "unexpected answer {} to an update of {}: {why}; is groups.{}.dns.server a {} update URL?",
                quote(&body),
                pending.join(", "),
                self.group,
                self.flavor.label()
            )))
        })?;
        self.settle(pending, value, epoch, &lines, &body)
    }
}

#[async_trait]
impl DnsProvider for DyndnsProvider {
    fn kind(&self) -> &'static str {
        self.flavor.kind()
    }

    async fn publish(
        &self,
        site: &str,
        value: &RecordValue,
        epoch: Epoch,
    ) -> Result<(), StrategyError> {
        if value.is_empty() {
            return Err(StrategyError::Config(format!(
                "groups.{}.dns.addresses.{site}: no address to publish",
                self.group
            )));
        }
        let _flight = self.flight.lock().await;
        let pending: Vec<String> = {
            let mut st = self.lock();
            if let Some(line) = self.stopped(&mut st) {
                debug!(group = %self.group, "DNS update not sent: provider stopped");
                return Err(self.blocked(&format!("{line} (no request was sent)")));
            }
            // The server keeps no epoch: this provider is the fence. An
            // update that left may have been applied even when its answer
            // was lost (a timeout, a 5xx), so an order older than it is as
            // late as one older than a confirmed update.
            if epoch < st.epoch.max(st.sent_epoch) {
                let (seen, how) = if st.epoch >= st.sent_epoch {
                    (st.epoch, "confirmed")
                } else {
                    (
                        st.sent_epoch,
                        "sent (its answer was not a confirmation: it may be in force)",
                    )
                };
                return Err(StrategyError::StaleEpoch {
                    element: format!("{} (as last {how} by this orchestrator)", self.element),
                    sent: epoch,
                    seen,
                });
            }
            let pending: Vec<String> = self
                .names
                .iter()
                .filter(|n| st.confirmed.get(*n) != Some(value))
                .cloned()
                .collect();
            if pending.is_empty() {
                // Already confirmed: sending again would only earn a needless `nochg`.
                st.epoch = st.epoch.max(epoch);
                debug!(group = %self.group, to = %value, epoch, "DNS update not sent: already confirmed");
                return Ok(());
            }
            if let Some(e) = self.refused_again(&st, &pending, value) {
                debug!(group = %self.group, to = %value, epoch, "DNS update not sent: the server answered it with other addresses recently");
                return Err(e);
            }
            if let Some(e) = self.paused(&st, value) {
                debug!(group = %self.group, to = %value, epoch, "DNS update not sent: it failed recently");
                return Err(e);
            }
            pending
        };
        let r = self.send_update(&pending, site, value, epoch).await;
        self.note_outcome(value, &r);
        r
    }

    async fn observe(&self) -> Result<Option<ProviderView>, StrategyError> {
        let st = self.lock();
        if st.confirmed.is_empty() {
            return Ok(None);
        }
        let main = &self.names[0];
        let reference = st.confirmed.get(main).copied();
        let mut drift = Vec::new();
        for n in &self.names {
            match (st.confirmed.get(n), &reference) {
                (None, _) => drift.push(format!(
                    "{n}: no address confirmed by {} (none since start, or the answer to its last update was lost)",
                    self.element
                )),
                (Some(v), Some(r)) if v == r => {}
                (Some(v), Some(r)) => drift.push(format!("{n} holds {v} but {main} holds {r}")),
                (Some(_), None) => {}
            }
        }
        Ok(Some(ProviderView {
            value: if drift.is_empty() { reference } else { None },
            epoch: st.epoch,
            site: None,
            drift,
        }))
    }

    fn alerts(&self) -> Vec<String> {
        let mut st = self.lock();
        self.stopped(&mut st);
        st.block
            .iter()
            .chain(st.hold.iter())
            .map(|s| s.line.clone())
            .collect()
    }

    fn clear(&self) -> Vec<String> {
        let mut st = self.lock();
        let mut lifted: Vec<String> = st
            .block
            .take()
            .into_iter()
            .chain(st.hold.take())
            .map(|s| s.line)
            .collect();
        // The operator fixed the server: updates it answered with other
        // addresses may be sent again at once.
        lifted.extend(self.lift_pause(&mut st));
        for (h, (sent, said, _)) in std::mem::take(&mut st.mismatch) {
            lifted.push(format!(
                "dns/{} group {} ({}): {h} may be sent {sent} again (the server answered {said})",
                self.flavor.kind(),
                self.group,
                self.element
            ));
        }
        if !lifted.is_empty() {
            info!(group = %self.group, server = %self.element, lifted = lifted.len(), "DNS provider alerts cleared; updates resume");
        }
        lifted
    }

    fn stops(&self) -> Vec<crate::ProviderStop> {
        self.stored_stops()
    }

    fn restore_stops(&self, stops: &[crate::ProviderStop]) -> Vec<String> {
        self.take_back(stops)
    }

    fn skips_confirmed(&self) -> bool {
        true
    }

    fn forget(&self, names: &[String]) {
        self.doubt(names);
    }

    fn contradicted(&self, name: &str, seen: &RecordValue) {
        let other = self.lock().confirmed.get(name).is_some_and(|v| v != seen);
        if other {
            self.doubt(&[name.to_string()]);
        }
    }

    fn term_began(&self) {
        let mut st = self.lock();
        st.confirmed.clear();
        st.nochg.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use warden_config::Secret;

    use super::super::Flavor;
    use super::*;

    /// An update server that answers `200` with an endless body (no
    /// length announced): the provider stops reading at its limit and says
    /// so, instead of holding all of it in the orchestrator's memory.
    #[tokio::test]
    async fn an_endless_answer_is_cut_at_the_limit() {
        let (addr, sent) = crate::capped::endless_server(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\ngood 10.77.2.7",
            b"",
        )
        .await;
        let p = DyndnsProvider::new(
            Flavor::Dyndns2,
            "web",
            Some(&format!("http://{addr}/nic/update")),
            &["www.example.net".to_string()],
            &Secret::new("user:password"),
            None,
            Duration::from_secs(10),
        )
        .expect("provider");
        let value = RecordValue {
            v4: Some("10.77.2.7".parse().unwrap()),
            v6: None,
        };
        let e = p
            .publish("b", &value, 2)
            .await
            .expect_err("cut at the limit");
        assert!(e.to_string().contains("is longer than"), "{e}");
        assert!(
            sent.load(std::sync::atomic::Ordering::Relaxed) < 32 * 1024 * 1024,
            "read on past the limit"
        );
    }
}

//! A client that keeps requesting a URL from inside a lab host, in a
//! background thread, and records every answer, so a test can measure how
//! long a failover made the service unavailable and what it served after.
//!
//! Each sample is one curl run (`ip netns exec`, about 20 ms of start-up).
//! Requests start every `interval` (start to start); a request slower than
//! the interval delays the next one instead of piling up.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::{net, sys, Lab};

/// One request of a [`ClientLoop`].
#[derive(Clone, Debug)]
pub(crate) struct Sample {
    /// When the request started.
    pub at: Instant,
    /// How long it took.
    pub latency: Duration,
    /// HTTP status if any response arrived.
    pub status: Option<u16>,
    /// `Ok(body)` for a 2xx answer; `Err(description)` for no answer or
    /// any other status.
    pub result: Result<String, String>,
}

impl Sample {
    pub(crate) fn is_ok(&self) -> bool {
        self.result.is_ok()
    }
}

/// A background client; see the module docs. Stops on `Drop` too.
pub(crate) struct ClientLoop {
    /// Set to ask the thread to finish after its current request.
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    thread: Option<JoinHandle<()>>,
}

impl ClientLoop {
    /// Starts requesting `url` from `from_host` every `interval`, each
    /// request limited to `timeout`.
    pub(crate) fn start(
        lab: &Lab,
        from_host: &str,
        url: &str,
        interval: Duration,
        timeout: Duration,
    ) -> Result<ClientLoop> {
        Self::spawn(lab, from_host, url, interval, timeout, false)
    }

    /// Like [`ClientLoop::start`], but a new request starts every `interval`
    /// even while earlier ones are still waiting (each in its own thread),
    /// as independent users arrive: a slow answer delays no one else.
    pub(crate) fn start_overlapping(
        lab: &Lab,
        from_host: &str,
        url: &str,
        interval: Duration,
        timeout: Duration,
    ) -> Result<ClientLoop> {
        Self::spawn(lab, from_host, url, interval, timeout, true)
    }

    fn spawn(
        lab: &Lab,
        from_host: &str,
        url: &str,
        interval: Duration,
        timeout: Duration,
        overlap: bool,
    ) -> Result<ClientLoop> {
        let ns = lab.host(from_host)?.ns.clone();
        let tools: &'static sys::Tools = lab.tools;
        let dir: PathBuf = lab.dir.clone();
        let url = url.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, samples) = (stop.clone(), samples.clone());
            std::thread::Builder::new()
                .name(format!("client-loop-{from_host}"))
                .spawn(move || {
                    let mut next = Instant::now();
                    let mut inflight = Vec::new();
                    while !stop.load(Ordering::SeqCst) {
                        let request = {
                            let (ns, dir, url, samples) =
                                (ns.clone(), dir.clone(), url.clone(), samples.clone());
                            move || {
                                let sample = request(tools, &ns, &dir, &url, timeout);
                                samples.lock().unwrap().push(sample);
                            }
                        };
                        if overlap {
                            inflight.push(std::thread::spawn(request));
                        } else {
                            request();
                        }
                        next = (next + interval).max(Instant::now());
                        while !stop.load(Ordering::SeqCst) && Instant::now() < next {
                            std::thread::sleep(
                                (next - Instant::now()).min(Duration::from_millis(20)),
                            );
                        }
                    }
                    for t in inflight {
                        let _ = t.join();
                    }
                    samples.lock().unwrap().sort_by_key(|s: &Sample| s.at);
                })?
        };
        Ok(ClientLoop {
            stop,
            samples,
            thread: Some(thread),
        })
    }

    /// The samples so far (the loop keeps running).
    pub(crate) fn samples(&self) -> Vec<Sample> {
        self.samples.lock().unwrap().clone()
    }

    /// Stops after the request in flight and returns all samples.
    pub(crate) fn stop(mut self) -> Vec<Sample> {
        self.finish();
        self.samples()
    }

    fn finish(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ClientLoop {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Lab {
    /// Shorthand for [`ClientLoop::start`].
    pub(crate) fn client_loop(
        &self,
        from_host: &str,
        url: &str,
        interval: Duration,
        timeout: Duration,
    ) -> Result<ClientLoop> {
        ClientLoop::start(self, from_host, url, interval, timeout)
    }
}

/// One request with curl in the namespace `ns`.
fn request(
    tools: &sys::Tools,
    ns: &str,
    dir: &std::path::Path,
    url: &str,
    timeout: Duration,
) -> Sample {
    let at = Instant::now();
    let outcome = net::curl_in_ns(tools, ns, dir, &[url], timeout);
    let latency = at.elapsed();
    let (status, result) = match outcome {
        Ok((code, body)) if (200..300).contains(&code) => (Some(code), Ok(body)),
        Ok((code, body)) => (Some(code), Err(format!("http {code}: {}", body.trim()))),
        Err(e) => (None, Err(format!("{e:#}"))),
    };
    Sample {
        at,
        latency,
        status,
        result,
    }
}

/// A run of failed samples.
#[derive(Clone, Debug)]
pub(crate) struct Outage {
    /// Start of the first failed request.
    pub start: Instant,
    /// Start of the next successful request; `None` if none followed.
    pub end: Option<Instant>,
    /// Number of failed requests.
    pub failures: usize,
    /// Error of the first failure, for messages.
    pub first_error: String,
}

/// Every run of consecutive failures, in order.
pub(crate) fn outage_windows(samples: &[Sample]) -> Vec<Outage> {
    let mut out: Vec<Outage> = Vec::new();
    let mut current: Option<Outage> = None;
    for s in samples {
        match (&s.result, current.as_mut()) {
            (Err(e), None) => {
                current = Some(Outage {
                    start: s.at,
                    end: None,
                    failures: 1,
                    first_error: e.clone(),
                })
            }
            (Err(_), Some(o)) => o.failures += 1,
            (Ok(_), Some(_)) => {
                let mut o = current.take().unwrap();
                o.end = Some(s.at);
                out.push(o);
            }
            (Ok(_), None) => {}
        }
    }
    out.extend(current);
    out
}

/// Duration of each outage: from the first failed request to the next
/// successful one. An outage that never ended is measured to the end of the
/// last sample.
pub(crate) fn outages(samples: &[Sample]) -> Vec<Duration> {
    let last = samples.last().map(|s| s.at + s.latency);
    outage_windows(samples)
        .into_iter()
        .map(|o| {
            o.end
                .or(last)
                .unwrap_or(o.start)
                .saturating_duration_since(o.start)
        })
        .collect()
}

/// Bodies of the successful requests started at or after `t`.
pub(crate) fn bodies_after(samples: &[Sample], t: Instant) -> Vec<String> {
    samples
        .iter()
        .filter(|s| s.at >= t)
        .filter_map(|s| s.result.as_ref().ok().cloned())
        .collect()
}

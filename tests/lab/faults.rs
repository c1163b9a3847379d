//! Fault injection (see `/work/shared/recipes/faults-iptables.md`).
//!
//! All rules are iptables rules *inside* a test namespace (`-w 5` waits for
//! the xtables lock when tests run in parallel); the root namespace's rules
//! are never touched. DROP rules make peers see timeouts, as in a real
//! partition. Adding is idempotent (`-C` first), removing deletes every copy.
//! `link_down`/`link_up` switch the root-side veth of a host, the one
//! root-namespace change, on an interface the lab owns.

use anyhow::Result;

use super::{sys, Lab};

impl Lab {
    fn iptables(&self, host: &str, args: &[&str]) -> Result<bool> {
        let ns = &self.host(host)?.ns;
        let mut cmd = std::process::Command::new(&self.tools.ip);
        cmd.args(["netns", "exec", ns.as_str()])
            .arg(&self.tools.iptables)
            .args(["-w", "5"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let out = cmd.output()?;
        Ok(out.status.success())
    }

    fn add_rule(&self, host: &str, chain: &str, spec: &[&str]) -> Result<()> {
        if !self.iptables(host, &[&["-C", chain], spec].concat())? {
            let args = [&["-A", chain], spec].concat();
            if !self.iptables(host, &args)? {
                anyhow::bail!("iptables {} in {host} failed", args.join(" "));
            }
        }
        Ok(())
    }

    fn del_rule(&self, host: &str, chain: &str, spec: &[&str]) -> Result<()> {
        while self.iptables(host, &[&["-D", chain], spec].concat())? {}
        Ok(())
    }

    /// In `host`, drop everything from and to `peer` (a one-sided view:
    /// `host` loses `peer`; other hosts still reach both).
    pub(crate) fn cut(&self, host: &str, peer: &str) -> Result<()> {
        let ip = self.host(peer)?.ip.to_string();
        self.add_rule(host, "INPUT", &["-s", &ip, "-j", "DROP"])?;
        self.add_rule(host, "OUTPUT", &["-d", &ip, "-j", "DROP"])
    }

    /// Undoes [`Lab::cut`].
    pub(crate) fn heal(&self, host: &str, peer: &str) -> Result<()> {
        let ip = self.host(peer)?.ip.to_string();
        self.del_rule(host, "INPUT", &["-s", &ip, "-j", "DROP"])?;
        self.del_rule(host, "OUTPUT", &["-d", &ip, "-j", "DROP"])
    }

    /// [`Lab::cut`] on both sides.
    pub(crate) fn cut_both(&self, a: &str, b: &str) -> Result<()> {
        self.cut(a, b)?;
        self.cut(b, a)
    }

    /// [`Lab::heal`] on both sides.
    pub(crate) fn heal_both(&self, a: &str, b: &str) -> Result<()> {
        self.heal(a, b)?;
        self.heal(b, a)
    }

    /// In `host`, TCP to `peer` is refused at once (RST) instead of timing
    /// out: looks like a dead service rather than a partition.
    pub(crate) fn reject(&self, host: &str, peer: &str) -> Result<()> {
        let ip = self.host(peer)?.ip.to_string();
        self.add_rule(
            host,
            "OUTPUT",
            &[
                "-d",
                &ip,
                "-p",
                "tcp",
                "-j",
                "REJECT",
                "--reject-with",
                "tcp-reset",
            ],
        )
    }

    /// Undoes [`Lab::reject`].
    pub(crate) fn unreject(&self, host: &str, peer: &str) -> Result<()> {
        let ip = self.host(peer)?.ip.to_string();
        self.del_rule(
            host,
            "OUTPUT",
            &[
                "-d",
                &ip,
                "-p",
                "tcp",
                "-j",
                "REJECT",
                "--reject-with",
                "tcp-reset",
            ],
        )
    }

    /// Partition `host` from everyone: drop all traffic in and out of its
    /// `eth0` (its own loopback keeps working).
    pub(crate) fn isolate(&self, host: &str) -> Result<()> {
        self.add_rule(host, "INPUT", &["-i", "eth0", "-j", "DROP"])?;
        self.add_rule(host, "OUTPUT", &["-o", "eth0", "-j", "DROP"])
    }

    /// Undoes [`Lab::isolate`] (only those rules; cuts stay).
    pub(crate) fn unisolate(&self, host: &str) -> Result<()> {
        self.del_rule(host, "INPUT", &["-i", "eth0", "-j", "DROP"])?;
        self.del_rule(host, "OUTPUT", &["-o", "eth0", "-j", "DROP"])
    }

    /// Drops each packet `host` receives on `eth0` with probability
    /// `permille`/1000 (iptables `statistic`, random mode): with every host
    /// doing it, each link loses that share of its packets one way.
    pub(crate) fn lossy(&self, host: &str, permille: u16) -> Result<()> {
        let p = format!("{:.3}", f64::from(permille) / 1000.0);
        self.add_rule(host, "INPUT", &loss_spec(&["-i", "eth0"], &p))
    }

    /// Undoes [`Lab::lossy`].
    pub(crate) fn unlossy(&self, host: &str, permille: u16) -> Result<()> {
        let p = format!("{:.3}", f64::from(permille) / 1000.0);
        self.del_rule(host, "INPUT", &loss_spec(&["-i", "eth0"], &p))
    }

    /// Packets the random-loss rules of `host` dropped so far (both chains;
    /// shows a loss test really lost packets).
    pub(crate) fn lost_packets(&self, host: &str) -> Result<u64> {
        let ns = &self.host(host)?.ns;
        let mut total = 0;
        for chain in ["INPUT", "OUTPUT"] {
            let out = std::process::Command::new(&self.tools.ip)
                .args(["netns", "exec", ns.as_str()])
                .arg(&self.tools.iptables)
                .args(["-w", "5", "-L", chain, "-v", "-x", "-n"])
                .stdin(std::process::Stdio::null())
                .output()?;
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if line.contains("statistic mode random") && line.contains("DROP") {
                    total += line
                        .split_whitespace()
                        .next()
                        .and_then(|n| n.parse::<u64>().ok())
                        .unwrap_or(0);
                }
            }
        }
        Ok(total)
    }

    /// In `host`, drop `permille`/1000 of the packets from and to `peer`
    /// (a lossy path between two hosts, both directions).
    pub(crate) fn lossy_path(&self, host: &str, peer: &str, permille: u16) -> Result<()> {
        let ip = self.host(peer)?.ip.to_string();
        let p = format!("{:.3}", f64::from(permille) / 1000.0);
        self.add_rule(host, "INPUT", &loss_spec(&["-s", &ip], &p))?;
        self.add_rule(host, "OUTPUT", &loss_spec(&["-d", &ip], &p))
    }

    /// Flushes every rule in `host` (all cuts, rejects, isolation).
    pub(crate) fn heal_all(&self, host: &str) -> Result<()> {
        for chain in ["INPUT", "OUTPUT"] {
            if !self.iptables(host, &["-F", chain])? {
                anyhow::bail!("iptables -F {chain} in {host} failed");
            }
        }
        Ok(())
    }

    /// Takes the root-side end of `host`'s veth down: its packets vanish
    /// (peers time out), as if its cable were pulled.
    pub(crate) fn link_down(&self, host: &str) -> Result<()> {
        let veth = &self.host(host)?.veth;
        sys::run(&self.tools.ip, ["link", "set", veth.as_str(), "down"]).map(drop)
    }

    /// Undoes [`Lab::link_down`] (traffic flows again within ~0.2 s).
    pub(crate) fn link_up(&self, host: &str) -> Result<()> {
        let veth = &self.host(host)?.veth;
        sys::run(&self.tools.ip, ["link", "set", veth.as_str(), "up"]).map(drop)
    }
}

/// `MATCH -m statistic --mode random --probability P -j DROP`.
fn loss_spec<'a>(matches: &[&'a str], p: &'a str) -> Vec<&'a str> {
    let mut spec = matches.to_vec();
    spec.extend_from_slice(&[
        "-m",
        "statistic",
        "--mode",
        "random",
        "--probability",
        p,
        "-j",
        "DROP",
    ]);
    spec
}

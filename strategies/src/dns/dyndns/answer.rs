//! The dyndns2 protocol's answers, strictly: the flavors (No-IP, generic
//! dyndns2), every return code and what it means for the provider,
//! parsing one code per host line, and quoting answer text in errors.

use super::*;

/// Which server family the provider speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// No-IP (default server [`NOIP_SERVER`]).
    Noip,
    /// Any DynDNS-compatible server (its URL is required).
    Dyndns2,
}

impl Flavor {
    /// The provider kind as in failover.conf.
    pub fn kind(self) -> &'static str {
        match self {
            Flavor::Noip => "noip",
            Flavor::Dyndns2 => "dyndns2",
        }
    }

    pub(super) fn label(self) -> &'static str {
        match self {
            Flavor::Noip => "No-IP",
            Flavor::Dyndns2 => "dyndns2",
        }
    }
}

/// A return code of the dyndns2 family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// `good IP`: updated.
    Good,
    /// `nochg IP`: already held (success; must not be caused repeatedly).
    Nochg,
    /// `nohost`: the hostname is not in the account (or the DDNS key's group).
    Nohost,
    /// `badauth`: wrong username or password.
    Badauth,
    /// `badagent`: the client (User-Agent) is disabled.
    Badagent,
    /// `!donator`: the update asked for a paid feature.
    NotDonator,
    /// `abuse`: the account or hostname is blocked for abuse.
    Abuse,
    /// `911`: a failure on the provider's side; retry no sooner than 30 minutes.
    Emergency,
    /// `notfqdn` (Dyn): not a fully-qualified domain name.
    Notfqdn,
    /// `numhost` (Dyn): too many hostnames in one update, or a round-robin record.
    Numhost,
    /// `dnserr` (Dyn): the provider's DNS system failed.
    Dnserr,
}

/// What a code means for the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    Success,
    /// Hold for [`HOLD`], then try again.
    Hold,
    /// Stop until an operator acts.
    Fatal,
}

impl Code {
    /// The code of an answer word (`None`: not a code of the family).
    pub fn parse(word: &str) -> Option<Code> {
        Some(match word {
            "good" => Code::Good,
            "nochg" => Code::Nochg,
            "nohost" => Code::Nohost,
            "badauth" => Code::Badauth,
            "badagent" => Code::Badagent,
            "!donator" => Code::NotDonator,
            "abuse" => Code::Abuse,
            "911" => Code::Emergency,
            "notfqdn" => Code::Notfqdn,
            "numhost" => Code::Numhost,
            "dnserr" => Code::Dnserr,
            _ => return None,
        })
    }

    /// The code as the server writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Good => "good",
            Code::Nochg => "nochg",
            Code::Nohost => "nohost",
            Code::Badauth => "badauth",
            Code::Badagent => "badagent",
            Code::NotDonator => "!donator",
            Code::Abuse => "abuse",
            Code::Emergency => "911",
            Code::Notfqdn => "notfqdn",
            Code::Numhost => "numhost",
            Code::Dnserr => "dnserr",
        }
    }

    pub(super) fn class(self) -> Class {
        match self {
            Code::Good | Code::Nochg => Class::Success,
            Code::Emergency | Code::Dnserr => Class::Hold,
            _ => Class::Fatal,
        }
    }

    /// What the code means and what the operator should do.
    pub(super) fn advice(self, flavor: Flavor, group: &str) -> String {
        let key = format!("groups.{group}.dns");
        match self {
            Code::Good | Code::Nochg => "success".into(),
            Code::Nohost => format!(
                "the hostname does not exist in this account: check {key}.name and {key}.aliases, and that the credentials (account or DDNS key) own it"
            ),
            Code::Badauth => format!(
                "the username or password was refused: fix the secret named by {key}.credentials (USER:PASSWORD of the account or DDNS key)"
            ),
            Code::Badagent => format!(
                "the server disabled this client: set {key}.user_agent to \"Company NameOfProgram/Version contact@example\" with a real contact{}",
                if flavor == Flavor::Noip { " (No-IP may need to approve the agent)" } else { "" }
            ),
            Code::NotDonator => format!(
                "the update asked for a feature this account does not have (e.g. IPv6 or offline): upgrade the account or remove the IPv6 address from {key}.addresses"
            ),
            Code::Abuse => "the account or hostname is blocked for abuse: resolve it with the provider's support before updating again".into(),
            Code::Emergency => "the provider reports a failure on its side; it asks clients to retry no sooner than 30 minutes".into(),
            Code::Notfqdn => format!(
                "a hostname is not fully qualified (host.domain): fix {key}.name or {key}.aliases"
            ),
            Code::Numhost => format!(
                "too many hostnames in one update (or a round-robin record): send fewer {key}.aliases"
            ),
            Code::Dnserr => "the provider's DNS system failed; retried no sooner than 30 minutes".into(),
        }
    }
}

/// One answer line: a code and, for `good`/`nochg`, the addresses it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub code: Code,
    pub ips: Vec<IpAddr>,
}

/// Parse an answer `body` to an update of `hosts` hostnames: one [`Line`]
/// per hostname, in order. A single non-success line for several hostnames
/// (a failure of the account or system, given once) applies to all. The
/// error says what was wrong with the text (the caller quotes it).
pub fn parse_answer(body: &str, hosts: usize, flavor: Flavor) -> Result<Vec<Line>, String> {
    let raw: Vec<&str> = body
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if raw.is_empty() {
        return Err("the answer is empty (expected one return code per hostname)".into());
    }
    let mut lines = Vec::with_capacity(raw.len());
    for l in &raw {
        let (word, rest) = match l.split_once(char::is_whitespace) {
            Some((w, r)) => (w, r.trim()),
            None => (*l, ""),
        };
        let code = Code::parse(word).ok_or_else(|| {
            format!(
                "{} is not a return code of the dyndns2 protocol",
                quote_max(word, 40)
            )
        })?;
        let mut ips = Vec::new();
        if code.class() == Class::Success {
            if rest.is_empty() {
                if flavor == Flavor::Noip {
                    return Err(format!(
                        "`{}` without the address it set (No-IP always names it)",
                        code.as_str()
                    ));
                }
            } else {
                for part in rest.split(',').map(str::trim) {
                    let ip = part
                        .parse::<IpAddr>()
                        .map_err(|_| format!("{} is not an IP address", quote_max(part, 60)))?;
                    ips.push(ip);
                }
            }
        }
        lines.push(Line { code, ips });
    }
    if lines.len() == hosts {
        return Ok(lines);
    }
    if lines.len() == 1 && lines[0].code.class() != Class::Success {
        return Ok(vec![lines[0].clone(); hosts]);
    }
    Err(format!(
        "{} line{} for {hosts} hostname{} (expected one return code per hostname, in order)",
        lines.len(),
        if lines.len() == 1 { "" } else { "s" },
        if hosts == 1 { "" } else { "s" },
    ))
}

/// Longest piece of an unexpected answer quoted in an error.
const QUOTE_MAX: usize = 200;

/// `text` quoted, cut after [`QUOTE_MAX`] characters.
pub(super) fn quote(text: &str) -> String {
    quote_max(text, QUOTE_MAX)
}

fn quote_max(text: &str, max: usize) -> String {
    crate::text::quote(text, max, "body")
}

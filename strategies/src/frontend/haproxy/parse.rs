//! The strict parsers of the Runtime API replies the HAProxy driver reads:
//! `show servers state BACKEND` ([`parse_servers_state`] into
//! [`ServerState`]s, with the `srv_admin_state` bits that stop traffic) and
//! `get var` of the fence variable ([`parse_fence`] into a [`Fence`]). Pure
//! functions of the reply text, so they are unit- and fuzz-tested here.

/// `srv_admin_state` flags meaning "no new traffic": forced, inherited
/// and resolution maintenance (0x01, 0x02, 0x20: HAProxy's own
/// `SRV_ADMF_MAINT` mask, 0x23), forced and inherited drain (0x08, 0x10).
/// 0x04 (maintenance from haproxy.cfg's `disabled`) stays set after
/// `state ready` and does not stop traffic; nor does 0x40 (2.x
/// `SRV_ADMF_HMAINT`, 3.x `SRV_ADMF_FQDN_CHANGED`: the server's FQDN was
/// set at run time — kept for good, exported in this dump): a server with
/// it still takes users, so it must be drained and cut like any other.
const ADMIN_MAINT: u32 = 0x01 | 0x02 | 0x20;
const ADMIN_DRAIN: u32 = 0x08 | 0x10;

/// One server's line of `show servers state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerState {
    pub(super) name: String,
    /// `srv_admin_state`: a bit field (see [`ADMIN_MAINT`], [`ADMIN_DRAIN`]).
    pub(super) admin: u32,
    /// `srv_time_since_last_change`, in seconds: how long a drain has
    /// lasted (none when the dump has no such field).
    pub(super) since_change: Option<u64>,
}

impl ServerState {
    pub(super) fn ready(&self) -> bool {
        self.admin & (ADMIN_MAINT | ADMIN_DRAIN) == 0
    }
    fn in_maint(&self) -> bool {
        self.admin & ADMIN_MAINT != 0
    }
    pub(super) fn draining(&self) -> bool {
        !self.in_maint() && self.admin & ADMIN_DRAIN != 0
    }
}

/// The fence held in HAProxy: the highest accepted epoch and its site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fence {
    pub(super) epoch: u64,
    pub(super) site: String,
}

/// Parse `show servers state BACKEND` (format version 1). `Err("")` when the
/// reply is not a state dump at all (an error message), `Err(why)` when it is
/// a malformed one.
pub(crate) fn parse_servers_state(reply: &str, backend: &str) -> Result<Vec<ServerState>, String> {
    match reply.split('\n').next() {
        Some("1") => {}
        Some(v) if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()) => {
            return Err(format!("format version {v}, only version 1 is understood"))
        }
        _ => return Err(String::new()),
    }
    // Every line ends with a newline, and the dump with an empty line.
    let body = reply
        .strip_suffix("\n\n")
        .ok_or("the dump does not end with an empty line (truncated?)")?;
    let mut lines = body.split('\n').skip(1);
    let header = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .ok_or("no `# be_id be_name ...` header after the version line")?;
    let names: Vec<&str> = header.split(' ').collect();
    let col = |n: &str| {
        names
            .iter()
            .position(|x| *x == n)
            .ok_or_else(|| format!("the header has no {n} field"))
    };
    let (be, srv, op, admin) = (
        col("be_name")?,
        col("srv_name")?,
        col("srv_op_state")?,
        col("srv_admin_state")?,
    );
    let since = col("srv_time_since_last_change").ok();
    let mut out = Vec::new();
    for (i, line) in lines.enumerate() {
        if line.is_empty() {
            return Err(format!("an empty line before server line {}", i + 1));
        }
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.len() != names.len() {
            return Err(format!(
                "server line {} has {} fields, the header {}",
                i + 1,
                fields.len(),
                names.len()
            ));
        }
        if fields[be] != backend {
            return Err(format!(
                "server line {} is for backend {:?}, not {backend:?}",
                i + 1,
                fields[be]
            ));
        }
        let num = |k: usize, what: &str| {
            fields[k].parse::<u32>().map_err(|_| {
                format!(
                    "server line {}: {what} {:?} is not a number",
                    i + 1,
                    fields[k]
                )
            })
        };
        // srv_op_state (0 stopped, 1 starting, 2 running, 3 stopping) is
        // health, not routing: checked for form only.
        num(op, "srv_op_state")?;
        out.push(ServerState {
            name: fields[srv].to_string(),
            admin: num(admin, "srv_admin_state")?,
            since_change: since.and_then(|k| fields[k].parse().ok()),
        });
    }
    Ok(out)
}

/// Parse the reply to `get var NAME`: `Ok(None)` for "Variable not found.",
/// `Err("")` for any other message, `Err(why)` for a malformed value.
pub(crate) fn parse_fence(reply: &str, var: &str) -> Result<Option<Fence>, String> {
    let text = reply.trim_end_matches('\n');
    if text == "Variable not found." {
        return Ok(None);
    }
    let Some(rest) = text.strip_prefix(var).and_then(|r| r.strip_prefix(": ")) else {
        return Err(String::new());
    };
    let value = rest
        .strip_prefix("type=str value=<")
        .and_then(|v| v.strip_suffix('>'))
        .ok_or("not a string variable")?;
    let (epoch, site) = value.split_once(':').ok_or("not EPOCH:SITE")?;
    let epoch = epoch
        .parse::<u64>()
        .map_err(|_| "the epoch is not a number")?;
    if !warden_config::load::valid_name(site) {
        return Err("the site is not a valid site name".into());
    }
    Ok(Some(Fence {
        epoch,
        site: site.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port";

    fn dump(lines: &[&str]) -> String {
        let mut s = format!("1\n{HEADER}\n");
        for l in lines {
            s.push_str(l);
            s.push('\n');
        }
        s.push('\n');
        s
    }

    #[test]
    fn parses_a_real_2_6_dump() {
        let d = dump(&[
            "3 be 1 srv1 127.0.0.1 2 0 1 1 0 6 3 2 6 0 0 0 - 28081 - 0 0 - - 0",
            "3 be 2 srv2 127.0.0.1 0 9 1 1 0 1 0 1 6 0 0 0 - 28082 - 0 0 - - 0",
        ]);
        let s = parse_servers_state(&d, "be").expect("parses");
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].name.as_str(), s[0].admin), ("srv1", 0));
        assert_eq!(s[0].since_change, Some(0));
        assert!(s[0].ready());
        assert!(s[1].in_maint() && !s[1].draining() && !s[1].ready());
        // An empty backend.
        assert_eq!(parse_servers_state(&dump(&[]), "be"), Ok(vec![]));
        // `disabled` in haproxy.cfg, then `state ready`: admin 4 takes traffic.
        let d = dump(&["3 be 1 a 127.0.0.1 2 4 1 1 0 1 0 1 6 0 0 0 - 1 - 0 0 - - 0"]);
        assert!(parse_servers_state(&d, "be").expect("parses")[0].ready());
    }

    /// 0x40 (an FQDN set at run time, kept for good) is no maintenance: a
    /// server with it takes users (HAProxy's own mask is 0x23), so it is
    /// ready, or draining with 0x08. Before, it was read as maintenance:
    /// a drain switch sent it no `state drain`, and it went on taking
    /// users beside the new site while the route read back as moved.
    #[test]
    fn an_fqdn_set_at_run_time_is_no_maintenance() {
        let line = |admin: u32| {
            dump(&[&format!(
                "3 be 1 a 127.0.0.1 2 {admin} 1 1 0 1 0 1 6 0 0 0 a.example 1 - 0 0 - - 0"
            )])
        };
        let s = parse_servers_state(&line(0x40), "be").expect("parses");
        assert!(s[0].ready() && !s[0].draining());
        let s = parse_servers_state(&line(0x48), "be").expect("parses");
        assert!(s[0].draining() && !s[0].ready());
        let s = parse_servers_state(&line(0x41), "be").expect("parses");
        assert!(s[0].in_maint() && !s[0].ready() && !s[0].draining());
        let s = parse_servers_state(&line(0x60), "be").expect("parses");
        assert!(s[0].in_maint());
    }

    #[test]
    fn rejects_anything_else() {
        assert_eq!(
            parse_servers_state("Can't find backend.\n\n", "be"),
            Err(String::new())
        );
        assert!(parse_servers_state("2\n# be_name\n\n", "be")
            .unwrap_err()
            .contains("version 2"));
        assert!(parse_servers_state("1\nbe_id be_name\n\n", "be")
            .unwrap_err()
            .contains("header"));
        assert!(parse_servers_state("1\n# be_id be_name srv_name\n\n", "be")
            .unwrap_err()
            .contains("srv_op_state"));
        let short = dump(&["3 be 1 srv1 127.0.0.1 2 0"]);
        assert!(parse_servers_state(&short, "be")
            .unwrap_err()
            .contains("has 7 fields"));
        let other = dump(&["3 zz 1 srv1 127.0.0.1 2 0 1 1 0 6 3 2 6 0 0 0 - 28081 - 0 0 - - 0"]);
        assert!(parse_servers_state(&other, "be")
            .unwrap_err()
            .contains("\"zz\""));
        let nan = dump(&["3 be 1 srv1 127.0.0.1 2 x 1 1 0 6 3 2 6 0 0 0 - 28081 - 0 0 - - 0"]);
        assert!(parse_servers_state(&nan, "be")
            .unwrap_err()
            .contains("srv_admin_state \"x\""));
        let truncated = format!(
            "1\n{HEADER}\n3 be 1 srv1 127.0.0.1 2 0 1 1 0 6 3 2 6 0 0 0 - 28081 - 0 0 - - 0"
        );
        assert!(parse_servers_state(&truncated, "be")
            .unwrap_err()
            .contains("truncated"));
        let trailing = format!("{}garbage\n\n", dump(&[]));
        assert!(parse_servers_state(&trailing, "be")
            .unwrap_err()
            .contains("an empty line before server line 1"));
        let one_newline = format!(
            "1\n{HEADER}\n3 be 1 srv1 127.0.0.1 2 0 1 1 0 6 3 2 6 0 0 0 - 28081 - 0 0 - - 0\n"
        );
        assert!(parse_servers_state(&one_newline, "be")
            .unwrap_err()
            .contains("truncated"));
    }

    #[test]
    fn fence_values() {
        let v = "proc.warden_route.web";
        assert_eq!(parse_fence("Variable not found.\n\n", v), Ok(None));
        assert_eq!(
            parse_fence("proc.warden_route.web: type=str value=<7:ca-1>\n", v),
            Ok(Some(Fence {
                epoch: 7,
                site: "ca-1".into()
            }))
        );
        assert_eq!(parse_fence("Permission denied\n\n", v), Err(String::new()));
        assert_eq!(
            parse_fence("proc.warden_route.db: type=str value=<7:ca>\n", v),
            Err(String::new())
        );
        assert!(parse_fence("proc.warden_route.web: type=sint value=<7>\n", v).is_err());
        assert!(parse_fence("proc.warden_route.web: type=str value=<x:ca>\n", v).is_err());
        assert!(parse_fence("proc.warden_route.web: type=str value=<7>\n", v).is_err());
        assert!(parse_fence("proc.warden_route.web: type=str value=<7:c a>\n", v).is_err());
    }
}

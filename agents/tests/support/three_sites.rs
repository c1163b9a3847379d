//! Sites a, b and c with group web on all three, b's agent under test:
//! its config, a push into b stating a site and an epoch, and a bounded
//! wait (`untold`, `untold_deposed`). Include with `lone_site` beside it.

use std::path::Path;
use std::time::{Duration, Instant};

use warden_agents::gate::order::{PushOrder, Stated};
use warden_agents::gate::Transfer;

/// The config of sites a, b and c, group web on all three with an rsync
/// plan; b's state and data in `dir`.
pub(crate) fn config(base: &str, dir: &Path) -> warden_config::Config {
    let secret = |name: &str| {
        let f = dir.join(name);
        super::lone_site::private_file(&f, &format!("{name}-0123456789abcdef\n"));
        f.display().to_string()
    };
    let (token, pw) = (secret("token"), secret("pw"));
    let mut sites = String::new();
    for s in ["a", "b", "c"] {
        let data = dir.join(format!("{s}-data"));
        std::fs::create_dir_all(&data).unwrap();
        sites.push_str(&format!(
            "[groups.web.replication.sites.{s}]\npath = \"{}\"\n\
             module = \"127.0.0.{}:873/data-{s}\"\nuser = \"warden\"\n\
             password = {{ file = \"{pw}\" }}\n",
            data.display(),
            s.as_bytes()[0] - b'a' + 1,
        ));
    }
    let text = format!(
        r#"{orchestrator}
[sites.a]
agent_token = {{ env = "WARDEN_TEST_A_TOKEN_UNUSED" }}

[sites.b]
agent_token = {{ file = "{token}" }}
state_dir = "{state}"

[sites.c]
agent_token = {{ env = "WARDEN_TEST_C_TOKEN_UNUSED" }}

[groups.web]
sites = ["a", "b", "c"]
scheme = "dns"

[groups.web.dns]
provider = "noip"
name = "web.example.org"
credentials = {{ env = "WARDEN_TEST_DNS_CREDENTIALS_UNUSED" }}
addresses = {{ a = "198.51.100.1", b = "198.51.100.2", c = "198.51.100.3" }}

[groups.web.replication]
plan = "rsync"

{sites}"#,
        orchestrator = super::lone_site::orchestrator_tables(base, dir),
        state = dir.join("state").display(),
    );
    warden_config::parse(&text, Path::new("test.conf")).unwrap()
}

/// A push into b's module stating `site` of group web at `epoch`.
pub(crate) fn push(site: &str, epoch: u64) -> Transfer {
    Transfer {
        module: "data-b".into(),
        push: true,
        host: "127.0.0.1".into(),
        removes: false,
        order: Stated::Order(PushOrder {
            group: "web".into(),
            site: site.into(),
            epoch,
        }),
    }
}

/// Waits up to 10 s for `cond`.
pub(crate) async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

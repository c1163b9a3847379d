//! HAProxy frontends: `[frontends.NAME]` with kind = "haproxy" and groups with
//! driver = "haproxy" — what is accepted, and every mismatch reported at its
//! place with what to do.

use std::net::SocketAddr;
use std::time::Duration;

use warden_config::{ConfigError, FrontendDriverKind, RuntimeAddr};

use crate::{find, ok, one, pos_of, pos_of_nth, problems, show, BASE};

/// Two HAProxy machines (UNIX and TCP runtime API) and a group driving them.
const HX: &str = r#"
[frontends.hx1]
kind = "haproxy"
runtime = "/run/haproxy/admin.sock"

[frontends.hx2]
kind = "haproxy"
runtime = "127.0.0.1:9999"

[groups.shop]
sites = ["ca", "tx"]
scheme = "frontend"

[groups.shop.frontend]
driver = "haproxy"
frontends = ["hx1", "hx2"]
backend = "be_shop"
servers = { ca = "srv_ca" }
drain_timeout = "10s"
"#;

fn base() -> String {
    format!("{BASE}{HX}")
}

#[test]
fn haproxy_frontends_and_group_parse() {
    let c = ok(&base());
    assert_eq!(
        c.haproxy_frontends["hx1"].runtime,
        RuntimeAddr::Unix("/run/haproxy/admin.sock".into())
    );
    let tcp: SocketAddr = "127.0.0.1:9999".parse().unwrap();
    assert_eq!(c.haproxy_frontends["hx2"].runtime, RuntimeAddr::Tcp(tcp));
    // Builtin and HAProxy machines are kept apart; fe1 has no kind (builtin).
    assert_eq!(c.frontends.keys().collect::<Vec<_>>(), ["fe1"]);
    assert_eq!(c.haproxy_frontends.len(), 2);

    let f = c.groups["shop"].frontend.as_ref().unwrap().get_ref();
    assert_eq!(*f.driver.get_ref(), FrontendDriverKind::Haproxy);
    assert_eq!(f.backend.as_ref().unwrap().get_ref(), "be_shop");
    assert_eq!(f.server_of("ca"), "srv_ca");
    assert_eq!(f.server_of("tx"), "tx", "default: the site name");
    assert_eq!(f.drain_timeout, Duration::from_secs(10));
    assert!(f.backends.is_empty() && f.listen.is_none());

    // kind = "builtin" may be written out.
    ok(&base().replace("[frontends.fe1]\n", "[frontends.fe1]\nkind = \"builtin\"\n"));
}

#[test]
fn warden_frontend_refuses_an_haproxy_name() {
    let c = ok(&base());
    let err = c.frontend("hx1").unwrap_err();
    assert!(matches!(err, ConfigError::NotBuiltin { .. }), "{err:?}");
    assert!(err.to_string().contains("kind = \"haproxy\""), "{err}");
    assert!(c.frontend("fe1").is_ok());
}

#[test]
fn driver_and_frontend_kind_must_match() {
    // haproxy driver listing a builtin frontend.
    let text = base().replace(
        "frontends = [\"hx1\", \"hx2\"]",
        "frontends = [\"hx1\", \"fe1\"]",
    );
    let p = one(&text);
    assert_eq!(p.key, "groups.shop.frontend.frontends[1]");
    assert_eq!((p.line, p.col), pos_of_nth(&text, "\"fe1\"]", 1));
    assert!(
        p.message.contains(
            "frontend \"fe1\" is kind \"builtin\" but this group's driver is \"haproxy\""
        ),
        "{p}"
    );

    // builtin driver listing an HAProxy.
    let text = base().replace("frontends = [\"fe1\"]", "frontends = [\"hx2\"]");
    let p = one(&text);
    assert_eq!(p.key, "groups.web.frontend.frontends[0]");
    assert_eq!((p.line, p.col), pos_of(&text, "\"hx2\"]"));
    assert!(p.message.contains("is kind \"haproxy\""), "{p}");
}

#[test]
fn haproxy_frontend_needs_a_valid_runtime_and_no_builtin_keys() {
    let text = base().replace("runtime = \"/run/haproxy/admin.sock\"\n", "");
    let p = one(&text);
    assert_eq!(p.key, "frontends.hx1.runtime");
    assert_eq!(p.line, pos_of(&text, "[frontends.hx1]").0);
    assert!(p.message.contains("missing required key `runtime`"), "{p}");

    for bad in ["localhost:9999", "run/haproxy.sock", "127.0.0.1", "/"] {
        let text = base().replace("\"127.0.0.1:9999\"", &format!("{bad:?}"));
        let p = one(&text);
        assert_eq!(p.key, "frontends.hx2.runtime", "{bad}");
        let (line, col) = pos_of(&text, &format!("runtime = {bad:?}"));
        assert_eq!((p.line, p.col), (line, col + "runtime = ".len()), "{bad}");
        assert_eq!(p.value, Some(format!("{bad:?}")));
        assert!(p.message.contains("UNIX socket"), "{bad}: {p}");
    }

    let text = base().replace(
        "runtime = \"127.0.0.1:9999\"\n",
        "runtime = \"127.0.0.1:9999\"\ncontrol = \"10.0.0.5:7100\"\ntoken = { file = \"/etc/warden/hx2.token\" }\n",
    );
    let p = problems(&text);
    assert_eq!(p.len(), 2, "{}", show(&p));
    let control = find(&p, "frontends.hx2.control");
    assert_eq!(
        control.line,
        pos_of_nth(&text, "control = \"10.0.0.5:7100\"\ntoken", 1).0
    );
    assert!(
        control.message.contains("only for kind \"builtin\""),
        "{control}"
    );
    let token = find(&p, "frontends.hx2.token");
    assert!(token.message.contains("takes no token"), "{token}");
    assert!(!token.to_string().contains("hx2.token\""), "{token}");
}

#[test]
fn builtin_frontend_keys() {
    let text = base().replace(
        "control = \"10.0.0.5:7100\"\n",
        "runtime = \"/run/haproxy/admin.sock\"\n",
    );
    let p = problems(&text);
    assert_eq!(p.len(), 2, "{}", show(&p));
    let r = find(&p, "frontends.fe1.runtime");
    assert!(r.message.contains("Add kind = \"haproxy\""), "{r}");
    let c = find(&p, "frontends.fe1.control");
    assert_eq!(c.line, pos_of(&text, "[frontends.fe1]").0);
    assert!(c.message.contains("missing required key `control`"), "{c}");

    let text = base().replace("token = { file = \"/etc/warden/fe1.token\" }\n", "");
    let p = one(&text);
    assert_eq!(p.key, "frontends.fe1.token");
    assert!(p.message.contains("missing required key `token`"), "{p}");

    let text = base().replace(
        "[frontends.hx1]\nkind = \"haproxy\"",
        "[frontends.hx1]\nkind = \"nginx\"",
    );
    let p = one(&text);
    assert_eq!(p.key, "frontends.hx1.kind");
    assert!(p.message.contains("\"builtin\", \"haproxy\""), "{p}");
}

#[test]
fn haproxy_group_needs_a_backend_and_takes_no_builtin_keys() {
    let text = base().replace("backend = \"be_shop\"\n", "");
    let p = one(&text);
    assert_eq!(p.key, "groups.shop.frontend.backend");
    assert_eq!(p.line, pos_of(&text, "[groups.shop.frontend]").0);
    assert!(p.message.contains("needs backend = \"NAME\""), "{p}");

    let text = base().replace("backend = \"be_shop\"", "backend = \"be shop\"");
    let p = one(&text);
    assert_eq!(p.key, "groups.shop.frontend.backend");
    assert_eq!((p.line, p.col), pos_of(&text, "\"be shop\""));

    let text = base().replace(
        "backend = \"be_shop\"\n",
        "backend = \"be_shop\"\nlisten = \"10.0.0.5:0\"\nbackends = { ca = \"10.1.0.10:80\", tx = \"10.2.0.10:80\" }\n",
    );
    let p = problems(&text);
    assert_eq!(p.len(), 2, "{}", show(&p));
    let l = find(&p, "groups.shop.frontend.listen");
    assert_eq!((l.line, l.col), pos_of(&text, "\"10.0.0.5:0\""));
    assert!(l.message.contains("needs a port"), "{l}");
    let b = find(&p, "groups.shop.frontend.backends");
    assert!(b.message.contains("servers = { SITE = \"SERVER\" }"), "{b}");

    // listen is where haproxy.cfg's bind accepts users: allowed, probed.
    let c = ok(&base().replace(
        "backend = \"be_shop\"\n",
        "backend = \"be_shop\"\nlisten = \"0.0.0.0:443\"\n",
    ));
    let f = c.groups["shop"].frontend_scheme().expect("frontend scheme");
    assert_eq!(f.listen.map(|l| l.port()), Some(443));

    let text = base().replace("frontends = [\"hx1\", \"hx2\"]\n", "");
    let p = one(&text);
    assert_eq!(p.key, "groups.shop.frontend.frontends");
    assert!(p.message.contains("of kind \"haproxy\""), "{p}");

    // And the builtin driver takes no HAProxy keys.
    let text = base().replace(
        "listen = \"10.0.0.5:443\"\n",
        "listen = \"10.0.0.5:443\"\nbackend = \"be_web\"\nservers = { ca = \"a\" }\n",
    );
    let p = problems(&text);
    assert_eq!(p.len(), 2, "{}", show(&p));
    assert!(find(&p, "groups.web.frontend.backend")
        .message
        .contains("only driver \"haproxy\""));
    find(&p, "groups.web.frontend.servers");
}

#[test]
fn servers_map_group_sites_to_distinct_valid_names() {
    let text = base().replace(
        "servers = { ca = \"srv_ca\" }",
        "servers = { ca = \"srv_ca\", ny = \"srv_ny\" }",
    );
    let p = one(&text);
    assert_eq!(p.key, "groups.shop.frontend.servers.ny");
    assert_eq!((p.line, p.col), pos_of(&text, "ny ="));
    assert!(
        p.message
            .contains("not a site of this group; the group's sites: [ca, tx]"),
        "{p}"
    );

    for bad in ["be/srv", "srv ca", "srv;ca", ""] {
        let text = base().replace("\"srv_ca\"", &format!("{bad:?}"));
        let p = one(&text);
        assert_eq!(p.key, "groups.shop.frontend.servers.ca", "{bad}");
        assert_eq!(p.value, Some(format!("{bad:?}")));
        assert!(p.message.contains("not an HAProxy server name"), "{p}");
    }

    // tx defaults to "tx": mapping ca to "tx" too is a clash.
    let text = base().replace("\"srv_ca\"", "\"tx\"");
    let p = one(&text);
    assert_eq!(p.key, "groups.shop.frontend.servers.tx");
    assert!(
        p.message
            .contains("sites \"ca\" and \"tx\" both map to HAProxy server \"tx\""),
        "{p}"
    );
}

#[test]
fn haproxy_example() {
    let path =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/haproxy.conf");
    let c = warden_config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(c.frontends.is_empty());
    assert_eq!(
        c.haproxy_frontends["edge2"].runtime,
        RuntimeAddr::Tcp("10.0.0.6:9999".parse().unwrap())
    );
    let f = c.groups["shop"].frontend.as_ref().unwrap().get_ref();
    assert_eq!((f.server_of("ca"), f.server_of("tx")), ("srv_ca", "tx"));
}

#[test]
fn connect_retry_is_the_builtin_frontends_and_bounded() {
    let backends = "backends = { ca = \"10.1.0.10:8443\", tx = \"10.2.0.10:8443\" }";
    assert!(BASE.contains(backends));
    let text = BASE.replace(backends, &format!("{backends}\nconnect_retry = \"300ms\""));
    let c = ok(&text);
    assert_eq!(
        c.groups["web"].frontend_scheme().unwrap().connect_retry,
        Duration::from_millis(300)
    );
    let text = text.replace("\"300ms\"", "\"6s\"");
    let p = one(&text);
    assert_eq!(p.key, "groups.web.frontend.connect_retry");
    assert_eq!((p.line, p.col), pos_of(&text, "\"6s\""));
    assert!(p.message.contains("at most"), "{p}");

    // HAProxy retries in haproxy.cfg.
    let text = base().replace(
        "drain_timeout = \"10s\"",
        "drain_timeout = \"10s\"\nconnect_retry = \"300ms\"",
    );
    let p = one(&text);
    assert_eq!(p.key, "groups.shop.frontend.connect_retry");
    assert!(p.message.contains("haproxy.cfg"), "{p}");
}

/// `hold_connections` is the built-in frontend's: given to an HAProxy
/// group it was taken and did nothing (HAProxy is never told to hold).
/// Refused at its place, even at its default value; left out, fine.
#[test]
fn hold_connections_on_an_haproxy_group_is_refused_at_its_place() {
    for value in ["\"2s\"", "\"0s\""] {
        let text = base().replace(
            "drain_timeout = \"10s\"",
            &format!("drain_timeout = \"10s\"\nhold_connections = {value}"),
        );
        let p = one(&text);
        assert_eq!(p.key, "groups.shop.frontend.hold_connections");
        assert_eq!((p.line, p.col), pos_of(&text, value));
        assert!(p.message.contains("built-in frontend's"), "{p}");
    }
    ok(&base());
}

/// Two groups driving one backend of one HAProxy (the same runtime API,
/// under one frontend name or two) were accepted: each group's route sets
/// that backend's servers for its own site, undoing the other's moves,
/// and each is fenced only against its own epochs. Refused at the later
/// group's backend; another backend, or another HAProxy, is fine.
#[test]
fn two_groups_cannot_drive_one_haproxy_backend() {
    let second = |backend: &str, frontends: &str| {
        format!(
            "\n[groups.cart]\nsites = [\"ca\", \"tx\"]\nscheme = \"frontend\"\n\n[groups.cart.frontend]\n\
             driver = \"haproxy\"\nfrontends = [{frontends}]\nbackend = \"{backend}\"\n"
        )
    };
    let text = base() + &second("be_shop", "\"hx2\"");
    let p = one(&text);
    assert_eq!(p.key, "groups.cart.frontend.backend");
    assert_eq!((p.line, p.col), pos_of_nth(&text, "\"be_shop\"", 1));
    assert!(p.message.contains("groups.shop.frontend.backend"), "{p}");
    // The same HAProxy under another name.
    let text = base()
        + "\n[frontends.hx3]\nkind = \"haproxy\"\nruntime = \"[::ffff:127.0.0.1]:9999\"\n"
        + &second("be_shop", "\"hx3\"");
    assert_eq!(one(&text).key, "groups.cart.frontend.backend");
    ok(&(base() + &second("be_cart", "\"hx1\", \"hx2\"")));
    let other = base() + "\n[frontends.hx3]\nkind = \"haproxy\"\nruntime = \"127.0.0.1:9998\"\n";
    ok(&(other + &second("be_shop", "\"hx3\"")));
}

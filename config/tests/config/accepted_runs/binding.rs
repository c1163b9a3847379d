//! Nothing is bound twice on one host: a frontend's listens and control
//! API, the orchestrator's API, frontends sharing a host or a state_dir.

use super::{at, deployment_problems, WEB2};
use crate::{find, ok, pos_of_nth, problems, BASE};

#[test]
fn a_frontend_cannot_bind_one_port_twice() {
    // The same address as group web, a wildcard over it, the control API's.
    for listen in ["10.0.0.5:443", "0.0.0.0:443", "[::]:443", "10.0.0.5:7100"] {
        let text = format!("{BASE}{}", WEB2.replace("LISTEN", listen));
        let m = at(
            &text,
            "groups.web2.frontend.listen",
            &format!("\"{listen}\""),
        );
        assert!(m.contains("binds this port already"), "{listen}: {m}");
    }
    // Another port, another IP on the port, or any free port: fine.
    for listen in ["10.0.0.5:444", "10.0.0.6:443", "127.0.0.1:0"] {
        ok(&format!("{BASE}{}", WEB2.replace("LISTEN", listen)));
    }
    let text = format!(
        "{BASE}\n[frontends.fe2]\ncontrol = \"10.0.0.5:7100\"\ntoken = {{ file = \"/etc/warden/fe2.token\" }}\n"
    )
    .replace("frontends = [\"fe1\"]", "frontends = [\"fe1\", \"fe2\"]");
    let p = problems(&text);
    let m = &find(&p, "frontends.fe2.control").message;
    assert!(m.contains("frontends.fe1.control"), "{m}");
}

/// A built-in frontend binds its group's `listen` on its host; when that
/// is the orchestrator's host and the port its API's, the frontend and the
/// orchestrator cannot both bind it, and whichever starts second stops.
/// check-config refuses it at the group's listen: the API's own IP and
/// port, a loopback listen beside an API on a wildcard, or a wildcard
/// listen on a frontend whose control API is on the orchestrator's IP. A
/// wildcard listen on another host, or another port, is fine.
#[test]
fn a_group_listen_at_the_orchestrators_api_is_refused_by_check_config() {
    let check = deployment_problems;
    let keys = |ps: &[warden_config::Problem]| -> Vec<String> {
        ps.iter().map(|p| p.key.clone()).collect()
    };
    // The API's own address.
    let text = BASE.replace("listen = \"10.0.0.5:443\"", "listen = \"10.0.0.2:7000\"");
    ok(&text);
    let ps = check(&text);
    assert_eq!(keys(&ps), ["groups.web.frontend.listen"], "{ps:?}");
    assert_eq!(
        (ps[0].line, ps[0].col),
        pos_of_nth(&text, "\"10.0.0.2:7000\"", 1)
    );
    assert!(ps[0].message.contains("orchestrator.listen"), "{ps:?}");
    // Everything on one host's loopback.
    let local = BASE
        .replace("10.0.0.2:7000", "127.0.0.1:7000")
        .replace("10.0.0.5:7100", "127.0.0.1:7100");
    assert_eq!(check(&local), vec![]);
    for listen in ["127.0.0.1:7000", "0.0.0.0:7000", "[::]:7000"] {
        let text = local.replace(
            "listen = \"10.0.0.5:443\"",
            &format!("listen = \"{listen}\""),
        );
        assert_eq!(
            keys(&check(&text)),
            ["groups.web.frontend.listen"],
            "{listen}"
        );
    }
    // A frontend on the orchestrator's host, binding every address.
    let same_host = BASE
        .replace("10.0.0.5:7100", "10.0.0.2:7100")
        .replace("listen = \"10.0.0.5:443\"", "listen = \"0.0.0.0:7000\"");
    assert_eq!(keys(&check(&same_host)), ["groups.web.frontend.listen"]);
    // An API on a wildcard (with its url) and a loopback listen on its port.
    let wild_api = BASE
        .replace(
            "listen = \"10.0.0.2:7000\"",
            "listen = \"0.0.0.0:7000\"\nurl = \"http://10.0.0.2:7000\"",
        )
        .replace("listen = \"10.0.0.5:443\"", "listen = \"127.0.0.1:7000\"");
    assert_eq!(keys(&check(&wild_api)), ["groups.web.frontend.listen"]);
    // Another host's wildcard on the API's port, or the API's IP on
    // another port: fine.
    for ok_text in [
        BASE.replace("listen = \"10.0.0.5:443\"", "listen = \"0.0.0.0:7000\""),
        BASE.replace("listen = \"10.0.0.5:443\"", "listen = \"10.0.0.2:7001\""),
    ] {
        assert_eq!(check(&ok_text), vec![]);
    }
}

/// Built-in frontends whose control APIs share an IP are on one host: two
/// of them in one group both bind the group's `listen` there, and one
/// frontend's group `listen` at another's control port is that port
/// twice; the second frontend to start stops. check-config refuses both,
/// at the later key; frontends on other hosts, or a group another port,
/// are fine.
#[test]
fn frontends_on_one_host_cannot_bind_one_port_twice() {
    let check = deployment_problems;
    let keys = |ps: &[warden_config::Problem]| -> Vec<String> {
        ps.iter().map(|p| p.key.clone()).collect()
    };
    let two = |fe2_control: &str| {
        format!(
            "{BASE}\n[frontends.fe2]\ncontrol = \"{fe2_control}\"\ntoken = {{ file = \"/etc/warden/fe2.token\" }}\n"
        )
        .replace("frontends = [\"fe1\"]", "frontends = [\"fe1\", \"fe2\"]")
    };
    // One group, two frontends on one host: its listen is bound twice.
    let text = two("10.0.0.5:7101");
    ok(&text);
    let ps = check(&text);
    assert_eq!(keys(&ps), ["groups.web.frontend.listen"], "{ps:?}");
    assert_eq!(
        (ps[0].line, ps[0].col),
        pos_of_nth(&text, "\"10.0.0.5:443\"", 0)
    );
    assert!(
        ps[0].message.contains("fe1 and fe2 are on one host"),
        "{ps:?}"
    );
    // The same on loopback, and with a wildcard listen.
    let local = two("127.0.0.1:7101").replace("10.0.0.5:7100", "127.0.0.1:7100");
    for listen in ["127.0.0.1:443", "0.0.0.0:443"] {
        let text = local.replace(
            "listen = \"10.0.0.5:443\"",
            &format!("listen = \"{listen}\""),
        );
        assert_eq!(
            keys(&check(&text)),
            ["groups.web.frontend.listen"],
            "{listen}"
        );
    }
    // fe2 alone in a group listening at fe1's control port on their host.
    let text = format!(
        "{BASE}\n[frontends.fe2]\ncontrol = \"10.0.0.5:7101\"\ntoken = {{ file = \"/etc/warden/fe2.token\" }}\n{}",
        WEB2.replace("LISTEN", "10.0.0.5:7100")
            .replace("frontends = [\"fe1\"]", "frontends = [\"fe2\"]")
    );
    ok(&text);
    let ps = check(&text);
    assert_eq!(keys(&ps), ["groups.web2.frontend.listen"], "{ps:?}");
    assert!(ps[0].message.contains("frontends.fe1.control"), "{ps:?}");
    // fe2's control at the port fe1 binds for group web, on their host.
    let text = BASE.replace("listen = \"10.0.0.5:443\"", "listen = \"0.0.0.0:7101\"")
        + "\n[frontends.fe2]\ncontrol = \"10.0.0.5:7101\"\ntoken = { file = \"/etc/warden/fe2.token\" }\n";
    ok(&text);
    let ps = check(&text);
    assert_eq!(keys(&ps), ["frontends.fe2.control"], "{ps:?}");
    assert!(
        ps[0].message.contains("groups.web.frontend.listen"),
        "{ps:?}"
    );
    // Two hosts, or one host and two ports: fine.
    assert_eq!(check(&two("10.0.0.6:7100")), vec![]);
    let text = format!(
        "{BASE}\n[frontends.fe2]\ncontrol = \"10.0.0.5:7101\"\ntoken = {{ file = \"/etc/warden/fe2.token\" }}\n{}",
        WEB2.replace("LISTEN", "10.0.0.5:444")
            .replace("frontends = [\"fe1\"]", "frontends = [\"fe2\"]")
    );
    assert_eq!(check(&text), vec![]);
}

/// Two built-in frontends on one host (control APIs on one IP) with one
/// `state_dir` (given, or one's given as the other's default) would each
/// overwrite the other's fence and refuse to start on the other's file
/// ("it belongs to frontend …"): check-config refuses it at the later
/// frontend's key. On two hosts one path is two directories: fine.
#[test]
fn frontends_on_one_host_cannot_share_a_state_dir() {
    let check = deployment_problems;
    let with = |fe2_control: &str, fe1_dir: &str, fe2_dir: &str| {
        BASE.replace(
            "token = { file = \"/etc/warden/fe1.token\" }",
            &format!("token = {{ file = \"/etc/warden/fe1.token\" }}\n{fe1_dir}"),
        ) + &format!(
            "\n[frontends.fe2]\ncontrol = \"{fe2_control}\"\ntoken = {{ file = \"/etc/warden/fe2.token\" }}\n{fe2_dir}\n"
        )
    };
    let shared = "state_dir = \"/var/lib/warden/fe\"";
    let text = with("10.0.0.5:7101", shared, shared);
    ok(&text);
    let ps = check(&text);
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert_eq!(ps[0].key, "frontends.fe2.state_dir");
    assert_eq!(
        (ps[0].line, ps[0].col),
        pos_of_nth(&text, "\"/var/lib/warden/fe\"", 1)
    );
    assert!(ps[0].message.contains("frontend fe1's state_dir"), "{ps:?}");
    // fe2's given dir is fe1's default one.
    let text = with(
        "10.0.0.5:7101",
        "",
        "state_dir = \"/var/lib/warden/frontend-fe1/\"",
    );
    assert_eq!(check(&text).len(), 1, "{:?}", check(&text));
    // Their own dirs on one host, or one path on two hosts: fine.
    assert_eq!(check(&with("10.0.0.5:7101", "", "")), vec![]);
    assert_eq!(check(&with("10.0.0.6:7100", shared, shared)), vec![]);
}

/// An IPv4 address written as IPv4-mapped IPv6 (`[::ffff:10.0.0.5]`) is
/// that IPv4 address to a dual-stack socket: bound, it binds it
/// (`[::ffff:0.0.0.0]` binds the IPv4 wildcard), dialled, it reaches it.
/// The checks that nothing is bound twice compared it as another address
/// and accepted a frontend that then stopped at start (address in use), a
/// backend that is the group's own listen, a control API at the
/// orchestrator's. Each is refused as its IPv4 form is.
#[test]
fn an_ipv4_mapped_address_is_its_ipv4_address() {
    for listen in ["[::ffff:10.0.0.5]:443", "[::ffff:0.0.0.0]:443"] {
        let text = format!("{BASE}{}", WEB2.replace("LISTEN", listen));
        let m = at(
            &text,
            "groups.web2.frontend.listen",
            &format!("\"{listen}\""),
        );
        assert!(m.contains("binds this port already"), "{listen}: {m}");
    }
    // IPv6 proper is another address.
    ok(&format!(
        "{BASE}{}",
        WEB2.replace("LISTEN", "[2001:db8::5]:443")
    ));
    let text = BASE.replace("\"10.1.0.10:8443\"", "\"[::ffff:10.0.0.5]:443\"");
    let m = at(
        &text,
        "groups.web.frontend.backends.ca",
        "\"[::ffff:10.0.0.5]:443\"",
    );
    assert!(m.contains("own listen address"), "{m}");
    let text = BASE.replace("10.0.0.5:7100", "[::ffff:10.0.0.2]:7000");
    ok(&text);
    let ps = deployment_problems(&text);
    let c = find(&ps, "frontends.fe1.control");
    assert!(c.message.contains("orchestrator's API listens"), "{c}");
}

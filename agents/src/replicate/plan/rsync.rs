//! The rsync plan's side of the config: a site's push or pull settings,
//! its change journal's paths, and the manifest and quarantine beside its
//! directory.

use super::*;

/// The rsync settings for pushing `from`'s directory into `to`'s module (or,
/// for a resync, pulling `to`'s module into `from`'s directory).
pub fn rsync_settings(
    config: &Config,
    group: &str,
    from: &str,
    to: &str,
) -> Result<RsyncSettings, AgentError> {
    let r = repl(config, group)?;
    let here = site(r, group, from)?;
    let there = site(r, group, to)?;
    let path = here
        .path
        .clone()
        .ok_or_else(|| missing(group, from, "path"))?;
    let user = there
        .user
        .clone()
        .ok_or_else(|| missing(group, to, "user"))?;
    let mut s = if let Some((host, port)) = there.ssh_target() {
        let login = SshLogin {
            path: there
                .path
                .clone()
                .ok_or_else(|| missing(group, to, "path"))?,
            key: there
                .ssh_key
                .clone()
                .ok_or_else(|| missing(group, to, "ssh_key"))?,
            known_hosts: there
                .known_hosts
                .clone()
                .ok_or_else(|| missing(group, to, "known_hosts"))?,
        };
        RsyncSettings::over_ssh(path.clone(), host, port, user, login)
    } else {
        let (host, port, module) = there
            .rsync_target()
            .ok_or_else(|| missing(group, to, "module"))?;
        let pw_ref = there
            .password
            .as_ref()
            .ok_or_else(|| missing(group, to, "password"))?;
        let password = Secret::load(
            &format!("groups.{group}.replication.sites.{to}.password"),
            pw_ref,
        )?;
        let mut s = RsyncSettings::new(path.clone(), host, module, user, password);
        s.port = port;
        s
    };
    s.manifest = Some(manifest_path(here, &path));
    s.quarantine = Some(quarantine_path(here, &path));
    s.guard = DeleteGuard::from_config(r);
    s.audit_every = Some(r.rsync_audit_every());
    s.xattrs = r.rsync_xattrs();
    s.acls = r.rsync_acls();
    s.hard_links = r.rsync_hard_links();
    s.sparse = r.rsync_sparse();
    let state_dir = crate::settings::state_dir(config, from);
    s.runs_mark = Some(crate::leftovers::rsync_mark(&state_dir));
    s.volume = Some(Volume {
        state_dir,
        group: group.to_string(),
        declared: here.is_mount_point(),
    });
    Ok(s)
}

/// Where `site` keeps a change journal of the group's data (the rsync plan
/// only): the data directory, and a private barrier directory beside the
/// site's manifest (`MANIFEST.journal`). `None` for plans without one.
pub fn journal_paths(
    config: &Config,
    group: &str,
    site_name: &str,
) -> Result<Option<(PathBuf, PathBuf)>, AgentError> {
    let r = repl(config, group)?;
    if r.plan != ReplicationPlan::Rsync {
        return Ok(None);
    }
    let here = site(r, group, site_name)?;
    let path = here
        .path
        .clone()
        .ok_or_else(|| missing(group, site_name, "path"))?;
    let mut barrier = manifest_path(here, &path).into_os_string();
    barrier.push(".journal");
    Ok(Some((path, PathBuf::from(barrier))))
}

/// `manifest`, or `PATH.warden-manifest.json` beside the directory.
pub fn manifest_path(s: &ReplicationSite, path: &std::path::Path) -> PathBuf {
    s.manifest.clone().unwrap_or_else(|| {
        let mut p = path.as_os_str().to_owned();
        p.push(".warden-manifest.json");
        PathBuf::from(p)
    })
}

/// `quarantine`, or `PATH.warden-quarantine` beside the directory.
pub fn quarantine_path(s: &ReplicationSite, path: &std::path::Path) -> PathBuf {
    s.quarantine.clone().unwrap_or_else(|| {
        let mut p = path.as_os_str().to_owned();
        p.push(".warden-quarantine");
        PathBuf::from(p)
    })
}

//! The receiving side of the rsync plan's authority: `warden rsync-gate`,
//! the `pre-xfer exec` of every site's rsync daemon module
//! (docs/rsyncd.md). Before the daemon lets a transfer into this site's
//! module begin, the gate reads this site's durable authority state (the
//! agent's `authority.json`, [`crate::authority::read`]):
//!
//! - a **push into the active site** of the module's group is refused. Only
//!   the active site pushes; a push into it comes from a site that was
//!   failed away from and whose replication still runs (it never heard its
//!   demote), a stale script, or a copied password — and with `--delete` it
//!   would overwrite or delete writes acknowledged here. rsync shows the
//!   refusal, with the reason, to the pusher;
//! - a push into a standby passes — of every group whose plan names the
//!   module here (the daemon names the module, not its host: two groups'
//!   modules at one site may share the name);
//! - a **read** (the daemon sends: a failback's pull, a listing, the
//!   symlink probe's read-back) changes nothing here and passes — unless
//!   it asks the daemon to remove what it sends (`--remove-source-files`,
//!   which a module that takes pushes obeys): that deletes here, at any
//!   role, and is refused; and unless the group's directory here is a
//!   volume that is gone ([`read_of_volume`]): what lies under the mount
//!   point is no copy of the group's data to pull.
//!
//! It fails closed: a module no group's rsync plan names for this site,
//! a state that cannot be read, or a role the agent forgot (its state file
//! lost from a directory in use: [`Role::Unknown`]) refuses the push; so
//! does a standby of a group of three sites or more whose agent has not
//! heard the orchestrator's epochs since it started ([`authority::untold`]):
//! a failover made while it was down or cut off left its epoch behind, and
//! the deposed site's push states that very epoch. (Of two sites, the one
//! failed over to is this one, active on disk: pushes into a standby of
//! two go on while the orchestrator cannot be reached.)
//!
//! Over ssh the gate is the forced command of the peers' key in this
//! site's `authorized_keys` (`warden rsync-gate --ssh`, [`ssh`]): the same
//! verdict, on a transfer read from `SSH_ORIGINAL_COMMAND`, which also
//! has to be rsync's server, with only the options warden's client sends,
//! on a path inside a group's directory at this site.

pub mod order;
pub mod ssh;

#[cfg(test)]
mod shared_tests;
#[cfg(test)]
mod test_config;

use warden_config::model::ReplicationPlan;
use warden_config::Config;

use crate::authority::{self, Role};
use order::{PushOrder, Stated};

/// One transfer, as the rsync daemon describes it to its `pre-xfer exec`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// `RSYNC_MODULE_NAME`.
    pub module: String,
    /// The daemon receives: a push. False only when the client asked it to
    /// send, the way rsync asks: `--sender` right after `--server` (see
    /// [`Transfer::from_env`]).
    pub push: bool,
    /// `RSYNC_HOST_ADDR`, for the messages.
    pub host: String,
    /// The client asked the daemon to remove the files it sends
    /// ([`REMOVING`] among its arguments): a read that deletes here.
    pub removes: bool,
    /// The order the pusher stated ([`order`]), as the `early exec` kept
    /// it; [`Stated::NotAsked`] from [`Transfer::from_env`].
    pub order: Stated,
}

/// The daemon's options that make it delete what it sends (rsync's
/// server takes long options by their exact names only).
pub const REMOVING: &[&str] = &["--remove-source-files", "--remove-sent-files"];

impl Transfer {
    /// From the daemon's environment, read through `var`: an error says
    /// which variable is missing (the gate was not run by an rsync daemon's
    /// `pre-xfer exec`).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Transfer, String> {
        let need = |name: &str| {
            var(name).ok_or_else(|| {
                format!(
                    "{name} is not set: run the gate as an rsync daemon module's `pre-xfer exec`"
                )
            })
        };
        let module = need("RSYNC_MODULE_NAME")?;
        // RSYNC_ARG0 is always "rsyncd"; the client's options follow. A
        // read is only the form rsync's client sends: `--server --sender`
        // first. `--sender` anywhere else may be the value of an option
        // that takes one (`--suffix --sender` keeps the daemon receiving,
        // `--delete` and all): that is a push, and judged as one.
        need("RSYNC_ARG0")?;
        let sends = var("RSYNC_ARG1").as_deref() == Some("--server")
            && var("RSYNC_ARG2").as_deref() == Some("--sender");
        // Every argument, wherever it stands (also as another option's
        // value: then refusing is only the safe side).
        let removes = (1..)
            .map_while(|i| var(&format!("RSYNC_ARG{i}")))
            .any(|a| REMOVING.contains(&a.as_str()));
        Ok(Transfer {
            module,
            push: !sends,
            host: var("RSYNC_HOST_ADDR").unwrap_or_else(|| "an unknown host".into()),
            removes,
            order: Stated::NotAsked,
        })
    }
}

/// May `t` go ahead at `site`? `Ok` says what passed, `Err` why it is refused.
pub fn check(config: &Config, site: &str, t: &Transfer) -> Result<String, String> {
    if t.removes {
        // Whatever this site's role: at the active site it deletes writes
        // acknowledged here, at a standby the copy a failover starts from
        // (the active site's book still says those files are here).
        return Err(format!(
            "warden rsync-gate: refused a transfer of module {:?} of site {site} from {}: it \
             removes what it sends ({}), which deletes files here; warden's transfers never \
             remove their source",
            t.module,
            t.host,
            REMOVING.join(" or ")
        ));
    }
    // Every group whose plan names this module here: the daemon names the
    // module only, not its host, so two groups whose modules at this site
    // share a name (two daemons) are told apart by nothing — the push is
    // judged by each of them, never by whichever comes first.
    let groups: Vec<&String> = config
        .groups
        .iter()
        .filter_map(|(name, g)| {
            let r = g.replication()?;
            // `HOST[:PORT]/MODULE` (one name: the config's checks see to
            // it): the daemon names only MODULE.
            let module = r.sites.get(site)?.module.as_deref()?;
            let name_only = module.split_once('/').map_or(module, |(_, m)| m);
            (r.plan == ReplicationPlan::Rsync && name_only == t.module).then_some(name)
        })
        .collect();
    if !t.push {
        for group in &groups {
            read_of_volume(config, site, group).map_err(|why| {
                format!(
                    "warden rsync-gate: refused a read of module {:?} of site {site} from {}: \
                     {why}",
                    t.module, t.host
                )
            })?;
        }
        return Ok(format!(
            "a read of module {:?} by {}: nothing changes here",
            t.module, t.host
        ));
    }
    let refused = |why: String| {
        format!(
            "warden rsync-gate: refused a push into module {:?} of site {site} from {}: {why}",
            t.module, t.host
        )
    };
    if groups.is_empty() {
        return Err(refused(format!(
            "no group's rsync plan names this module for site {site} \
             (`sites.{site}.module` in `[groups.NAME.replication]`)"
        )));
    }
    let standby = judge_all(config, site, &groups, refused)?;
    let order = stated_order(config, site, &groups, &t.order).map_err(&refused)?;
    if let Some((o, known)) = order.and_then(|o| Some((o, standby.epoch_of(&o.group)?))) {
        not_behind(o, known, site).map_err(refused)?;
    }
    Ok(format!(
        "push into module {:?} from {}{}: site {site} is {}",
        t.module,
        t.host,
        order.map_or(String::new(), |o| format!(
            " (site {} for group {} at epoch {})",
            o.site, o.group, o.epoch
        )),
        standby.said()
    ))
}

/// `Err` when the push's order `o` is older than the epoch `known` of its
/// group at `site`.
fn not_behind(o: &PushOrder, known: u64, site: &str) -> Result<(), String> {
    if o.epoch < known {
        return Err(format!(
            "it is a push of group {} from site {} at epoch {}, but site {site} knows epoch \
             {known} of the group: the pusher was failed away from or demoted without \
             hearing of it, and its data is older than what the group's active site writes",
            o.group, o.site, o.epoch
        ));
    }
    Ok(())
}

/// The order a push stated, checked against this site's config: `None`
/// when the module's daemon has no `early exec` (judged by role alone);
/// `Err` when the push stated none, a bad one, or one that names another
/// group or a site that cannot push it here.
fn stated_order<'a>(
    config: &Config,
    site: &str,
    groups: &[&String],
    stated: &'a Stated,
) -> Result<Option<&'a PushOrder>, String> {
    let o = match stated {
        Stated::NotAsked => return Ok(None),
        Stated::Nothing => {
            return Err(
                "it states no order (its group, site and epoch, which every warden \
                 agent's push states: rsync's --early-input, or over ssh the command's first \
                 word WARDEN_PUSH=)"
                    .into(),
            )
        }
        Stated::Bad(why) => return Err(why.clone()),
        Stated::Order(o) => o,
    };
    if !groups.iter().any(|g| **g == o.group) {
        return Err(format!(
            "it says it replicates group {:?}, which does not replicate through this module at \
             site {site}",
            o.group
        ));
    }
    let sites = config
        .groups
        .get(&o.group)
        .map(|g| g.site_names())
        .unwrap_or_default();
    if o.site == site || !sites.contains(&o.site) {
        return Err(format!(
            "it says it comes from site {:?}, which is not another site of group {}",
            o.site, o.group
        ));
    }
    Ok(Some(o))
}

/// What [`judge_all`] found: each group's epoch at this standby.
struct Standby(Vec<(String, u64)>);

impl Standby {
    fn epoch_of(&self, group: &str) -> Option<u64> {
        self.0.iter().find(|(g, _)| g == group).map(|(_, e)| *e)
    }

    /// "a standby of group G (epoch E)", joined.
    fn said(&self) -> String {
        self.0
            .iter()
            .map(|(g, e)| format!("a standby of group {g} (epoch {e})"))
            .collect::<Vec<_>>()
            .join(" and ")
    }
}

/// [`judge`] for each of `groups` (those a push may write into): refused
/// when any one refuses — a push judged by one group's role could land in
/// another's data at the site that group's users write to. `Ok`: each
/// group's epoch here.
fn judge_all(
    config: &Config,
    site: &str,
    groups: &[&String],
    refused: impl Fn(String) -> String,
) -> Result<Standby, String> {
    let mut each = Vec::new();
    for group in groups {
        let epoch = judge(config, site, group, &refused)?;
        each.push((group.to_string(), epoch));
    }
    Ok(Standby(each))
}

/// A read of `group`'s directory at `site` whose volume is gone (declared
/// or recorded a mount point, not one now) is refused, at any role: what
/// the directory under the mount point holds is not the group's data, and
/// a failback's resync reading it would take it for the active site's tree
/// — fetch its stale files over the returning site's and delete there what
/// it lacks (within the mass-delete guard's limits). An empty directory is
/// held by that guard; one holding a few files was not.
pub(crate) fn read_of_volume(config: &Config, site: &str, group: &str) -> Result<(), String> {
    let here = config
        .groups
        .get(group)
        .and_then(|g| g.replication())
        .and_then(|r| r.sites.get(site));
    let Some((data, here)) = here.and_then(|h| Some((h.path.as_deref()?, h))) else {
        return Ok(());
    };
    let dir = crate::settings::state_dir(config, site);
    crate::volumes::not_mounted(&dir, group, data, here.is_mount_point()).map_err(|why| {
        format!(
            "{why}: what it holds is not the group's data, and a resync reading it would fetch \
             its files and delete what it lacks at the reader; mount the volume again (reads \
             pass again by themselves)"
        )
    })
}

/// Whether `group` has two sites at most in this site's config.
fn of_two_sites(config: &Config, group: &str) -> bool {
    config
        .groups
        .get(group)
        .is_some_and(|g| g.sites.get_ref().len() <= 2)
}

/// Refuses a push into `site` for `group` unless this site's durable state
/// says it is a standby of it (`Ok` is that state's epoch); `refused`
/// words the reason.
fn judge(
    config: &Config,
    site: &str,
    group: &str,
    refused: impl Fn(String) -> String,
) -> Result<u64, String> {
    let dir = crate::settings::state_dir(config, site);
    let state = authority::read(&dir, site).map_err(|e| {
        refused(format!(
            "this site's role in group {group} cannot be known: {e}"
        ))
    })?;
    let Some(a) = state.get(group) else {
        return Err(refused(format!(
            "the agent's state in {} has no group {group} (not started with this config yet?)",
            dir.display()
        )));
    };
    match a.role {
        Role::Active => Err(refused(format!(
            "site {site} is the active site of group {group} (epoch {}): only the active site \
             pushes, and a push into it would overwrite or delete writes acknowledged here \
             (a site failed away from whose replication still runs?)",
            a.epoch
        ))),
        Role::Unknown => Err(refused(format!(
            "site {site}'s role in group {group} is unknown: its authority state was lost from \
             a state directory in use, and it may be the active site; pushes land again once \
             the orchestrator has said its role (a demote, or a promote)"
        ))),
        // Since it started, the agent has not heard the orchestrator: a
        // failover made while this site was down or cut off is unknown
        // here, and a deposed site states the very epoch known here. Only
        // with three sites or more: of two, the site failed over to is
        // this one, active on disk from its promote — a standby of two
        // sites has no failover it may have missed — so pushes into it go
        // on while the orchestrator cannot be reached (a config without
        // the group counts as more than two: fail closed).
        Role::Standby if authority::untold(&dir) && !of_two_sites(config, group) => {
            Err(refused(format!(
                "site {site}'s agent has not heard from the orchestrator since it started, so \
             epoch {} of group {group} here may be older than the group's (a failover made \
             while this site was down or cut off) and a deposed site's push would pass; \
             pushes land again once the orchestrator has answered its report",
                a.epoch
            )))
        }
        Role::Standby => {
            // The standby's own directory of the group, where the push
            // writes (the daemon's module path or, over ssh, the group's
            // directory): not into an empty one whose volume is gone.
            let here = config
                .groups
                .get(group)
                .and_then(|g| g.replication())
                .and_then(|r| r.sites.get(site));
            if let Some((data, here)) = here.and_then(|h| Some((h.path.as_deref()?, h))) {
                crate::volumes::unmounted(&dir, group, data, here.is_mount_point())
                    .map_err(&refused)?;
            }
            Ok(a.epoch)
        }
    }
}

#[cfg(test)]
mod tests;

//! Command-line interface: [`args`] (every subcommand), [`serve`] (the
//! service subcommands and `check-config`), [`gate`] (`rsync-gate`, run
//! by an rsync daemon), [`operator`] (the operator
//! commands, one API call each), [`drill`] (`warden drill`: a switchover
//! and a failback, waited for and reported) and [`render`] (what a person
//! reads). The
//! API client itself is [`crate::client`], shared with the quickstart.

mod args;
mod as_read;
mod drill;
mod gate;
mod operator;
mod render;
mod serve;

pub(crate) use args::{Cli, Cmd};
pub(crate) use serve::dispatch;

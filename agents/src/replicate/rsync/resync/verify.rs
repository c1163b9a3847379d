//! A failback's verification of the pull ([`Resyncer::verify`]): after a
//! pass of the same resyncer, that pass's delta by checksum (what it
//! fetched, what it could not confirm, kept items unless excepted); on a
//! fresh resyncer, the whole tree by checksum. Both count what the pull
//! carries beside content (modes, owners, ACLs, xattrs, hard links:
//! [`parse_whole_difference`]) and only read the peer.

use super::*;

impl RsyncResyncer {
    /// The last pass's delta: its fetched items by checksum, plus what it
    /// could not confirm. Proportional to the delta, not to the tree.
    pub(super) async fn verify_delta(
        &self,
        delta: Delta,
        except: &[String],
    ) -> Result<VerifyReport, AgentError> {
        let s = &self.settings;
        let cancel = CancellationToken::new();
        let mut differences = Vec::new();
        let path = |n: &str| PathBuf::from(OsString::from_vec(unescape_name(n)));
        if !delta.fetched.is_empty() {
            let mut list = Vec::new();
            for n in &delta.fetched {
                list.extend_from_slice(&unescape_name(n));
                list.push(0);
            }
            // Attributes too: a lost mode, owner, xattr or ACL, or a
            // hard link not made, is a difference (`parse_whole_difference`).
            let args = self.pull_args(
                &[
                    "-n",
                    "-c",
                    "--files-from=-",
                    "--from0",
                    "--out-format=%i %n",
                ],
                None,
            );
            run_rsync(s, args, Some(list), &cancel, |line| {
                if let Some(d) = parse_whole_difference(line) {
                    differences.push(d);
                }
            })
            .await?;
        }
        for n in &delta.missing {
            differences.push(Difference {
                path: path(n),
                kind: DifferenceKind::MissingAtTarget,
            });
        }
        for n in delta.extra.iter().filter(|n| !except.contains(n)) {
            differences.push(Difference {
                path: path(n),
                kind: DifferenceKind::ExtraAtTarget,
            });
        }
        Ok(VerifyReport {
            items: delta.items,
            bytes: delta.bytes,
            excepted: except.len() as u64,
            differences,
        })
    }

    /// The whole tree by checksum: `rsync -n -a -c --delete`, excluding the kept names.
    pub(super) async fn verify_full(&self, except: &[String]) -> Result<VerifyReport, AgentError> {
        let s = &self.settings;
        let cancel = CancellationToken::new();
        let peer = self.list_peer(&cancel).await?;
        let rules: Vec<Vec<u8>> = except.iter().map(|n| rule("-", n)).collect();
        let filter = self.filter_file(&rules)?;
        let args = self.pull_args(
            &["-n", "-c", "--delete", "--out-format=%i %n"],
            filter.as_ref(),
        );
        let mut differences = Vec::new();
        run_rsync(s, args, None, &cancel, |line| {
            if let Some(d) = parse_whole_difference(line) {
                differences.push(d);
            }
        })
        .await?;
        // A directory kept only because it holds a kept item is not a difference.
        differences.retain(|d: &Difference| {
            let p = escape_name(d.path.as_os_str().as_bytes());
            let dir = p.trim_end_matches('/');
            !(d.kind == DifferenceKind::ExtraAtTarget
                && p.ends_with('/')
                && except.iter().any(|e| e.starts_with(&format!("{dir}/"))))
        });
        let here = self.list_here().await?;
        Ok(VerifyReport {
            items: peer.len() as u64,
            bytes: peer.values().map(|i| i.size).sum(),
            excepted: except
                .iter()
                .filter(|n| here.contains_key(*n) && !peer.contains_key(*n))
                .count() as u64,
            differences,
        })
    }
}

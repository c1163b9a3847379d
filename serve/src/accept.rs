//! What an error from `accept` means to an accept loop (the APIs' here, the
//! frontend's data path). Linux passes a queued connection's own network
//! errors back from `accept` (accept(2), "Error handling": `ENETDOWN`,
//! `EPROTO`, `ENOPROTOOPT`, `EHOSTDOWN`, `ENONET`, `EHOSTUNREACH`,
//! `EOPNOTSUPP`, `ENETUNREACH`; also `ECONNABORTED` for a connection
//! aborted in the queue and `EPERM` for a firewall's refusal): that
//! connection is lost, the next one is not, and the loop goes on at once —
//! a pause there would let a client that breaks its own connections stall
//! everyone's. Only a shortage of the process's or the system's resources
//! (descriptors, buffers, memory), or an error it does not know, is worth a
//! pause before the next try.

use std::io;

/// What an accept error says about the next accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptFault {
    /// One connection's own failure: accept the next at once.
    Connection,
    /// Out of descriptors, buffers or memory, or not known: pause first.
    Resources,
}

/// Classify an error returned by `accept`.
pub fn accept_fault(e: &io::Error) -> AcceptFault {
    use io::ErrorKind as K;
    match e.kind() {
        K::ConnectionAborted
        | K::ConnectionReset
        | K::Interrupted
        | K::WouldBlock
        | K::NetworkDown
        | K::NetworkUnreachable
        | K::HostUnreachable
        | K::PermissionDenied => return AcceptFault::Connection,
        _ => {}
    }
    match e.raw_os_error() {
        Some(
            libc::EPROTO | libc::ENOPROTOOPT | libc::EHOSTDOWN | libc::ENONET | libc::EOPNOTSUPP,
        ) => AcceptFault::Connection,
        _ => AcceptFault::Resources,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection's own error is no reason to pause; a shortage or an
    /// unknown error pauses.
    #[test]
    fn each_error_by_what_it_calls_for() {
        use AcceptFault::{Connection, Resources};
        for (code, want) in [
            (libc::ECONNABORTED, Connection),
            (libc::ECONNRESET, Connection),
            (libc::EINTR, Connection),
            (libc::EAGAIN, Connection),
            (libc::ENETDOWN, Connection),
            (libc::EPROTO, Connection),
            (libc::ENOPROTOOPT, Connection),
            (libc::EHOSTDOWN, Connection),
            (libc::ENONET, Connection),
            (libc::EHOSTUNREACH, Connection),
            (libc::EOPNOTSUPP, Connection),
            (libc::ENETUNREACH, Connection),
            (libc::EPERM, Connection),
            (libc::EMFILE, Resources),
            (libc::ENFILE, Resources),
            (libc::ENOBUFS, Resources),
            (libc::ENOMEM, Resources),
            (libc::EINVAL, Resources),
            (libc::EBADF, Resources),
        ] {
            let e = io::Error::from_raw_os_error(code);
            assert_eq!(accept_fault(&e), want, "{e}");
        }
        let other = io::Error::other("something else");
        assert_eq!(accept_fault(&other), Resources);
    }
}

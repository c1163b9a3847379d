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

    #[test]
    fn a_connections_own_error_is_no_reason_to_pause() {
        for code in [
            libc::ECONNABORTED,
            libc::ECONNRESET,
            libc::EINTR,
            libc::EAGAIN,
            libc::ENETDOWN,
            libc::EPROTO,
            libc::ENOPROTOOPT,
            libc::EHOSTDOWN,
            libc::ENONET,
            libc::EHOSTUNREACH,
            libc::EOPNOTSUPP,
            libc::ENETUNREACH,
            libc::EPERM,
        ] {
            let e = io::Error::from_raw_os_error(code);
            assert_eq!(accept_fault(&e), AcceptFault::Connection, "{e}");
        }
    }

    #[test]
    fn a_shortage_or_an_unknown_error_pauses() {
        for code in [
            libc::EMFILE,
            libc::ENFILE,
            libc::ENOBUFS,
            libc::ENOMEM,
            libc::EINVAL,
            libc::EBADF,
        ] {
            let e = io::Error::from_raw_os_error(code);
            assert_eq!(accept_fault(&e), AcceptFault::Resources, "{e}");
        }
        let other = io::Error::other("something else");
        assert_eq!(accept_fault(&other), AcceptFault::Resources);
    }
}

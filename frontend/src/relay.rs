//! The byte relay of one proxied connection, client ⇄ backend, on the two
//! sockets themselves: each direction reads into its own buffer, allocated
//! at its first readable event and never zeroed (reads fill its spare
//! capacity), and writes all of it out before reading again.
//!
//! How a connection ends (the caller then closes both sockets):
//! - the backend ends its stream: once its data is written to the client,
//!   both sockets are closed at once — no `shutdown` before the `close` —
//!   when nothing from the client is waiting to be relayed (the client has
//!   ended too, or its receive queue is empty). Otherwise the end is passed
//!   on as a half-close (`shutdown(Write)` of the client) and the client's
//!   bytes still flow to the backend until the client ends. Not relayed as a
//!   half-close: a backend that ends its side and then still waits for
//!   client bytes that have not arrived yet — they are refused;
//! - the client ends its stream: passed on as a half-close of the backend,
//!   whose answer still flows until the backend ends;
//! - the backend refuses the client's bytes (a write to it, or the
//!   half-close passed on to it, fails: it reset the connection, as a
//!   server that answers an upload early and closes without reading the
//!   rest does): the client's bytes are dropped, and what the backend sent
//!   before still reaches the client — then a reset, as a direct
//!   connection would give, once all of it has left this host
//!   ([`reset_once_sent`]). The failed write took the socket's error, and
//!   reads after it end as cleanly as a finished stream: a clean end there
//!   would make a cut download look whole;
//! - any other error on either socket (a reset, most often): the other
//!   socket is then reset too (closed with `SO_LINGER` 0), never closed
//!   cleanly — a clean end would make a cut download or upload look whole
//!   to the peer.
//!
//! The client's first bytes are usually there when the relay starts (a
//! client sends its request right after connecting): they are read and
//! passed to the backend at once ([`Half::early`]), not after a turn of the
//! event loop for the runtime to report the sockets ready — the turn a
//! proxy like HAProxy saves with its speculative reads.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use socket2::SockRef;
use tokio::io::{AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::io::poll_read_buf;

use crate::budget::Activity;

/// Bytes read at once in each direction (the copy buffer of tokio and std).
const BUF_SIZE: usize = 8 * 1024;

/// Bytes relayed each way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Moved {
    /// Client → backend.
    pub(crate) up: u64,
    /// Backend → client.
    pub(crate) down: u64,
}

/// Where a direction failed: reading its source or writing its destination.
enum Fault {
    Read(io::Error),
    Write(io::Error),
}

/// One direction: its buffer and how far it got.
struct Half {
    /// Bytes read and not all written yet; empty capacity until the first read.
    buf: Vec<u8>,
    /// How much of `buf` is written.
    written: usize,
    /// The source ended its stream.
    eof: bool,
    /// The end was passed on as a half-close of the destination.
    shut: bool,
    moved: u64,
}

impl Half {
    fn new() -> Half {
        Half {
            buf: Vec::new(),
            written: 0,
            eof: false,
            shut: false,
            moved: 0,
        }
    }

    /// Nothing read is waiting to be written.
    fn drained(&self) -> bool {
        self.written == self.buf.len()
    }

    /// Read what `from` holds already and write it to `to`, with plain
    /// socket calls (the runtime has not reported either socket ready yet):
    /// through this thread's scratch buffer, so nothing is allocated when
    /// it all goes through; what `to` does not take stays in `buf` for
    /// [`Half::poll_copy`]. Nothing there yet ("would block") is no error.
    fn early(
        &mut self,
        from: &TcpStream,
        to: &TcpStream,
        activity: &Activity,
    ) -> Result<(), Fault> {
        thread_local! {
            static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; BUF_SIZE]);
        }
        SCRATCH.with_borrow_mut(|scratch| {
            let n = match (&*SockRef::from(from)).read(scratch) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(Fault::Read(e)),
            };
            activity.touch();
            let sent = match (&*SockRef::from(to)).write(&scratch[..n]) {
                Ok(w) => w,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) => return Err(Fault::Write(e)),
            };
            self.moved += sent as u64;
            if sent < n {
                self.buf.extend_from_slice(&scratch[sent..n]);
                self.written = 0;
            }
            Ok(())
        })
    }

    /// Copy `from` → `to` until `from` has ended and all it sent is written.
    /// Through the streams' own `poll_read`/`poll_write`: a short read or
    /// write ends the readiness there, with no extra call that would only
    /// answer "would block".
    fn poll_copy(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut TcpStream,
        to: &mut TcpStream,
        activity: &Activity,
    ) -> Poll<Result<(), Fault>> {
        loop {
            if !self.drained() {
                let n = ready!(Pin::new(&mut *to).poll_write(cx, &self.buf[self.written..]))
                    .map_err(Fault::Write)?;
                if n == 0 {
                    return Poll::Ready(Err(Fault::Write(io::ErrorKind::WriteZero.into())));
                }
                self.written += n;
                self.moved += n as u64;
                activity.touch();
                continue;
            }
            if self.eof {
                return Poll::Ready(Ok(()));
            }
            ready!(from.poll_read_ready(cx)).map_err(Fault::Read)?;
            self.buf.clear();
            self.written = 0;
            if self.buf.capacity() == 0 {
                self.buf.reserve_exact(BUF_SIZE);
            }
            // Into the spare capacity, never zeroed.
            match ready!(poll_read_buf(Pin::new(&mut *from), cx, &mut self.buf))
                .map_err(Fault::Read)?
            {
                0 => self.eof = true,
                _ => activity.touch(),
            }
        }
    }
}

/// Whether the client has bytes waiting in its receive queue, as far as the
/// runtime has seen (no system call when it saw none).
fn poll_client_waiting(cx: &mut Context<'_>, client: &TcpStream) -> io::Result<bool> {
    let mut one = [0u8; 1];
    match client.poll_peek(cx, &mut ReadBuf::new(&mut one)) {
        Poll::Pending => Ok(false),
        Poll::Ready(Ok(n)) => Ok(n > 0),
        Poll::Ready(Err(e)) => Err(e),
    }
}

/// Make `peer`'s close a reset, for the failure `e` of the other socket.
fn abort(peer: &TcpStream, e: io::Error) -> io::Error {
    // At worst the peer sees a clean end, as before.
    let _ = SockRef::from(peer).set_linger(Some(std::time::Duration::ZERO));
    e
}

/// How long a client is given to take what the backend sent before its
/// reset, before the reset is passed on anyway ([`reset_once_sent`]).
const SEND_OUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether all `client` was given has left this host (nothing waits
/// unsent), once `TCP_NOTSENT_LOWAT` is 1: `poll` says writable only then.
fn all_sent(client: &TcpStream) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(client, PollFlags::OUT)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match poll(&mut fds, Some(&now)) {
        Ok(1) => fds[0].revents().contains(PollFlags::OUT),
        // (an error: the client is gone; nothing more to wait for)
        Ok(_) => false,
        Err(_) => true,
    }
}

/// Make `client`'s close a reset once what it was given has left this
/// host — sent, not dropped by the reset — or after [`SEND_OUT`] (a client
/// that does not read): the backend reset the connection, and the client
/// must not take the end of what it got for a finished stream.
async fn reset_once_sent(client: &TcpStream) {
    let sock = SockRef::from(client);
    if sock.set_tcp_notsent_lowat(1).is_ok() {
        let until = tokio::time::Instant::now() + SEND_OUT;
        while !all_sent(client) && tokio::time::Instant::now() < until {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    // At worst the client sees a clean end, as before.
    let _ = sock.set_linger(Some(std::time::Duration::ZERO));
}

/// Relay between `client` and `backend` until the connection ends (see the
/// module docs); every byte moved touches `activity`.
pub(crate) async fn relay(
    client: &mut TcpStream,
    backend: &mut TcpStream,
    activity: &Activity,
) -> io::Result<Moved> {
    let (mut up, mut down) = (Half::new(), Half::new());
    // Set when the backend refused the client's bytes: they are dropped,
    // and the connection ends with the backend's answer, then a reset
    // (module docs).
    let mut refused: Option<io::Error> = None;
    match up.early(client, backend, activity) {
        Ok(()) => {}
        Err(Fault::Read(e)) => return Err(abort(backend, e)),
        Err(Fault::Write(e)) => {
            up.shut = true;
            refused = Some(e);
        }
    }
    let ended = poll_fn(|cx| -> Poll<io::Result<Option<io::Error>>> {
        if !up.shut {
            if let Poll::Ready(r) = up.poll_copy(cx, client, backend, activity) {
                match r {
                    Ok(()) => {
                        // A half-close the backend refuses (it reset the
                        // connection) is a refusal too.
                        if let Err(e) = ready!(Pin::new(&mut *backend).poll_shutdown(cx)) {
                            refused = Some(e);
                        }
                    }
                    Err(Fault::Read(e)) => return Poll::Ready(Err(abort(backend, e))),
                    // What the backend sent before still goes to the client.
                    Err(Fault::Write(e)) => refused = Some(e),
                }
                up.shut = true;
                if down.shut {
                    // The backend's answer ended cleanly before (its end
                    // passed on as a half-close): the client has it whole,
                    // and closes as usual; only its own bytes were refused.
                    return Poll::Ready(refused.take().map_or(Ok(None), Err));
                }
            }
        }
        if !down.shut {
            if let Poll::Ready(r) = down.poll_copy(cx, backend, client, activity) {
                match r {
                    Ok(()) => {}
                    Err(Fault::Read(e)) => return Poll::Ready(Err(abort(client, e))),
                    Err(Fault::Write(e)) => return Poll::Ready(Err(abort(backend, e))),
                }
                if let Some(e) = refused.take() {
                    return Poll::Ready(Ok(Some(e)));
                }
                let client_done = up.drained()
                    && (up.eof
                        || !poll_client_waiting(cx, client).map_err(|e| abort(backend, e))?);
                if client_done {
                    return Poll::Ready(Ok(None));
                }
                ready!(Pin::new(&mut *client).poll_shutdown(cx)).map_err(|e| abort(backend, e))?;
                down.shut = true;
                if up.shut {
                    return Poll::Ready(Ok(None));
                }
            }
        }
        Poll::Pending
    })
    .await?;
    if let Some(e) = ended {
        reset_once_sent(client).await;
        return Err(e);
    }
    Ok(Moved {
        up: up.moved,
        down: down.moved,
    })
}

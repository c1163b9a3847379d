//! The load bench's simulated agents on the wire, written and read with
//! plain socket calls so the generator takes little of the cores it
//! shares with the orchestrator: [`RawStream`] (a report stream, RFC 6455
//! frames by hand) and [`RawConn`] (a keep-alive HTTP/1.1 connection for
//! `POST /v1/reports`).

use anyhow::{bail, Context, Result};

/// One simulated agent's report stream, written and read with plain
/// socket calls (RFC 6455 frames by hand: text frames masked as a client
/// must, pings, and the server's unmasked answers and pongs), for the same
/// reason as [`RawConn`]: the generator shares the two cores.
pub(crate) struct RawStream {
    tcp: tokio::net::TcpStream,
    out: Vec<u8>,
    inb: Vec<u8>,
}

/// The client's mask key (any key will do; the server unmasks whatever it is).
const MASK: [u8; 4] = [0x5a, 0x17, 0xc3, 0x99];

/// Opens the report stream of agent `i` (its `token`). Each block of
/// 10,000 agents connects from its own loopback address (127.0.0.2, .3,
/// …): 20,000 connections from 127.0.0.1 would need more ephemeral ports
/// than the frontend's 10,000 listeners leave.
pub(crate) async fn open_stream(
    addr: std::net::SocketAddr,
    i: usize,
    token: &str,
) -> Result<RawStream> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4()?;
    let from = std::net::Ipv4Addr::new(127, 0, 0, 2 + (i / 10_000) as u8);
    socket.bind((from, 0).into())?;
    let mut tcp = socket.connect(addr).await?;
    tcp.set_nodelay(true)?;
    let req = format!(
        "GET /v1/reports/stream HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await?;
    let mut head = Vec::with_capacity(512);
    loop {
        if tcp.read_buf(&mut head).await? == 0 {
            bail!("the server closed the connection during the upgrade");
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(len) = resp.parse(&head)? {
            if resp.code != Some(101) {
                bail!("upgrade refused: {:?}", String::from_utf8_lossy(&head));
            }
            if head.len() > len {
                bail!("bytes after the 101 before any report");
            }
            break;
        }
    }
    Ok(RawStream {
        tcp,
        out: Vec::with_capacity(1024),
        inb: Vec::with_capacity(1024),
    })
}

impl RawStream {
    /// Writes one masked client frame (`opcode`, `payload`) in one call.
    pub(crate) async fn frame(&mut self, opcode: u8, payload: &[u8]) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        self.out.clear();
        self.out.push(0x80 | opcode);
        match payload.len() {
            n if n < 126 => self.out.push(0x80 | n as u8),
            n if n <= 0xffff => {
                self.out.push(0x80 | 126);
                self.out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                self.out.push(0x80 | 127);
                self.out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        self.out.extend_from_slice(&MASK);
        self.out
            .extend(payload.iter().enumerate().map(|(k, b)| b ^ MASK[k % 4]));
        self.tcp.write_all(&self.out).await?;
        Ok(())
    }

    /// Sends a ping and reads until its pong; the refusals read on the way.
    pub(crate) async fn ping_through(&mut self) -> Result<u64> {
        use tokio::io::AsyncReadExt;
        self.frame(0x9, b"").await?;
        let mut refused = 0;
        loop {
            // One whole server frame (unmasked) at the start of `inb`?
            if self.inb.len() >= 2 {
                let (len, at) = match self.inb[1] & 0x7f {
                    126 if self.inb.len() >= 4 => {
                        (u16::from_be_bytes([self.inb[2], self.inb[3]]) as usize, 4)
                    }
                    127 if self.inb.len() >= 10 => {
                        (u64::from_be_bytes(self.inb[2..10].try_into()?) as usize, 10)
                    }
                    126 | 127 => (usize::MAX, 0),
                    n => (n as usize, 2),
                };
                if len != usize::MAX && self.inb.len() >= at + len {
                    let opcode = self.inb[0] & 0x0f;
                    let payload = &self.inb[at..at + len];
                    let done = match opcode {
                        0xA => true,
                        0x1 => {
                            if payload.windows(16).any(|w| w == br#""type":"refused""#) {
                                refused += 1;
                            }
                            false
                        }
                        0x8 => bail!("the orchestrator closed the stream"),
                        _ => false,
                    };
                    self.inb.drain(..at + len);
                    if done {
                        return Ok(refused);
                    }
                    continue;
                }
            }
            if self.tcp.read_buf(&mut self.inb).await? == 0 {
                bail!("the stream closed");
            }
        }
    }
}

/// One simulated agent connection: a keep-alive HTTP/1.1 connection to the
/// orchestrator's API, reopened after any error.
pub(crate) struct RawConn {
    addr: std::net::SocketAddr,
    stream: Option<tokio::net::TcpStream>,
    request: Vec<u8>,
    response: Vec<u8>,
}

impl RawConn {
    pub(crate) fn new(addr: std::net::SocketAddr) -> RawConn {
        RawConn {
            addr,
            stream: None,
            request: Vec::with_capacity(1024),
            response: Vec::with_capacity(1024),
        }
    }

    /// POST `body` to `path` with `token`; the response's status code. The
    /// whole response (head and `content-length` body) is read before it
    /// returns, as a client would.
    pub(crate) async fn post(&mut self, path: &str, token: &str, body: &str) -> Result<u16> {
        let r = self.exchange(path, token, body).await;
        match &r {
            Ok((_, true)) | Err(_) => self.stream = None,
            Ok((_, false)) => {}
        }
        r.map(|(code, _)| code)
    }

    /// One request and its response: (status code, the server closes).
    async fn exchange(&mut self, path: &str, token: &str, body: &str) -> Result<(u16, bool)> {
        use std::io::Write as _;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let stream = match self.stream.take() {
            Some(s) => self.stream.insert(s),
            None => {
                let s = tokio::net::TcpStream::connect(self.addr).await?;
                s.set_nodelay(true)?;
                self.stream.insert(s)
            }
        };
        self.request.clear();
        write!(
            self.request,
            "POST {path} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        )?;
        stream.write_all(&self.request).await?;
        self.response.clear();
        let (code, close, end) = loop {
            if stream.read_buf(&mut self.response).await? == 0 {
                bail!("the server closed the connection before its response");
            }
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut head = httparse::Response::new(&mut headers);
            let httparse::Status::Complete(len) = head.parse(&self.response)? else {
                continue;
            };
            let mut body_len = None;
            let mut close = false;
            for h in head.headers.iter() {
                if h.name.eq_ignore_ascii_case("content-length") {
                    body_len = std::str::from_utf8(h.value)
                        .ok()
                        .and_then(|v| v.trim().parse::<usize>().ok());
                } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                    bail!("a response with transfer-encoding: not expected from the API");
                } else if h.name.eq_ignore_ascii_case("connection") {
                    close = h.value.eq_ignore_ascii_case(b"close");
                }
            }
            let body_len = body_len.context("a response without content-length")?;
            break (head.code.unwrap_or(0), close, len + body_len);
        };
        while self.response.len() < end {
            if stream.read_buf(&mut self.response).await? == 0 {
                bail!("the server closed the connection within its response");
            }
        }
        if self.response.len() > end {
            bail!("bytes after the response (nothing was pipelined)");
        }
        Ok((code, close))
    }
}

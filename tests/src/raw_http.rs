//! HTTP/1.1 spoken by hand over one TCP connection, for what a client
//! library hides: a `Content-Length` the client never honours, a chunked
//! body of any size, and whether the server keeps the connection for the
//! next request.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// No answer within this long means the server is waiting for something
/// the test will never send: the test fails instead of hanging.
const HANG: Duration = Duration::from_secs(60);

/// One response: status, headers (names lowercased) and body.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

/// A connection to `addr` (`host:port`).
pub struct RawConnection {
    stream: TcpStream,
    /// Bytes read past the last response.
    pending: Vec<u8>,
}

impl RawConnection {
    pub async fn open(addr: &str) -> Self {
        Self { stream: TcpStream::connect(addr).await.expect("connect"), pending: Vec::new() }
    }

    /// Send raw bytes. Errors are returned, not unwrapped: a server may
    /// answer and hang up before a large body is all sent.
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Read one response (its body sized by `Content-Length`, or the rest
    /// of the stream without one).
    pub async fn response(&mut self) -> RawResponse {
        tokio::time::timeout(HANG, self.read_response()).await.expect("the server answers without waiting")
    }

    async fn read_response(&mut self) -> RawResponse {
        let head_end = loop {
            if let Some(i) = self.pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            assert!(self.fill().await > 0, "connection closed before a response head");
        };
        let head = String::from_utf8(self.pending[..head_end].to_vec()).expect("ASCII head");
        self.pending.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length = headers.iter().find(|(n, _)| n == "content-length").map(|(_, v)| v.parse::<usize>().unwrap());
        match length {
            Some(n) => {
                while self.pending.len() < n {
                    assert!(self.fill().await > 0, "connection closed inside a body");
                }
            }
            None => while self.fill().await > 0 {},
        }
        let body = self.pending.drain(..length.unwrap_or(self.pending.len())).collect();
        RawResponse { status, headers, body }
    }

    async fn fill(&mut self) -> usize {
        let mut buf = [0u8; 8192];
        let n = self.stream.read(&mut buf).await.unwrap_or(0);
        self.pending.extend_from_slice(&buf[..n]);
        n
    }

    /// True once the server has closed the connection (a read sees the end).
    pub async fn closed_by_server(&mut self) -> bool {
        let read = tokio::time::timeout(HANG, self.stream.read(&mut [0u8; 1])).await;
        matches!(read, Ok(Ok(0) | Err(_)))
    }
}

/// A request head; `extra` are whole header lines without `\r\n`.
pub fn head(method: &str, path: &str, extra: &[&str]) -> Vec<u8> {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
    for line in extra {
        text.push_str(line);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    text.into_bytes()
}

/// `body` as one chunk of a chunked body, or the final empty chunk.
pub fn chunk(body: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
    out
}

//! A tiny HTTP/1.1 server spoken by hand on loopback, for the `http` import's
//! tests: it records every request exactly as it arrived and answers by
//! path, including the hostile answers a client library's own server
//! would never give (a body that never ends, a header that is not UTF-8).
//! One request per connection (`Connection: close`), so what it saw is
//! what was sent.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// The request target (path and query).
    pub target: String,
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// The value the `/key` and `/xml` routes hand out for capture.
pub const ISSUED: &str = "issued-by-server-Zq8w3Ry7";

/// The server; it runs until the runtime that started it stops.
pub struct Server {
    /// `http://127.0.0.1:<port>`.
    pub origin: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, log.clone()));
            }
        });
        Self { origin, seen }
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }
}

async fn serve(mut stream: TcpStream, log: Arc<Mutex<Vec<Seen>>>) {
    let Some(seen) = read_request(&mut stream).await else { return };
    log.lock().unwrap().push(seen.clone());
    let path = seen.target.split('?').next().unwrap_or_default().to_owned();
    let _ = match path.as_str() {
        "/echo" => echo(&mut stream, &seen).await,
        "/key" => {
            let body = json!({"key": {"id": "AKID-NEW", "secret": ISSUED}}).to_string();
            reply(&mut stream, "200 OK", &[("content-type", b"application/json")], body.as_bytes()).await
        }
        "/xml" => {
            let body = format!("<R xmlns='urn:x'><K><Id>AKID-NEW</Id><Secret>{ISSUED}</Secret></K></R>");
            reply(&mut stream, "200 OK", &[("content-type", b"text/xml")], body.as_bytes()).await
        }
        "/redirect" => reply(&mut stream, "302 Found", &[("location", b"/echo")], b"").await,
        "/status/404" => reply(&mut stream, "404 Not Found", &[], b"no such thing").await,
        "/status/500" => reply(&mut stream, "500 Internal Server Error", &[], b"broken").await,
        "/bad-header" => reply(&mut stream, "200 OK", &[("x-bad", b"caf\xe9\xff")], b"fine").await,
        "/big" => big(&mut stream).await,
        "/stall" => stall(&mut stream).await,
        _ => reply(&mut stream, "404 Not Found", &[], b"").await,
    };
}

/// Hand back what arrived: the body as it came, the target and every
/// header (as JSON) in `x-echo-target` and `x-echo-headers`, and the
/// `Authorization` header in `x-echo-authorization`. An echo is how a
/// server hands a secret back.
async fn echo(stream: &mut TcpStream, seen: &Seen) -> std::io::Result<()> {
    let headers = json!(seen.headers).to_string();
    let auth = seen.header("authorization").unwrap_or_default();
    let echoed: [(&str, &[u8]); 3] = [
        ("x-echo-target", seen.target.as_bytes()),
        ("x-echo-headers", headers.as_bytes()),
        ("x-echo-authorization", auth.as_bytes()),
    ];
    reply(stream, "200 OK", &echoed, &seen.body).await
}

/// 5 MiB with no `Content-Length`: the cap must stop the read, not the
/// header.
async fn big(stream: &mut TcpStream) -> std::io::Result<()> {
    stream.write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n").await?;
    let chunk = vec![b'x'; 64 << 10];
    for _ in 0..80 {
        stream.write_all(&chunk).await?;
    }
    Ok(())
}

/// Promise 1000 bytes, send 10, then wait far longer than any test.
async fn stall(stream: &mut TcpStream) -> std::io::Result<()> {
    stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\nconnection: close\r\n\r\n0123456789").await?;
    tokio::time::sleep(Duration::from_secs(600)).await;
    Ok(())
}

async fn reply(stream: &mut TcpStream, status: &str, headers: &[(&str, &[u8])], body: &[u8]) -> std::io::Result<()> {
    let mut out = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n", body.len()).into_bytes();
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    stream.write_all(&out).await?;
    stream.shutdown().await
}

/// Head and body of one request (`Content-Length` bodies only, as the
/// host sends them).
async fn read_request(stream: &mut TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 1 << 20 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target) = (first.next()?.to_owned(), first.next()?.to_owned());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Seen { method, target, headers, body })
}

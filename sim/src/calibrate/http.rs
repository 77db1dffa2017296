//! Just enough HTTP/1.1 for the node's local API: one request per connection
//! (`Connection: close`), chunked or sized bodies, and a server-sent-events reader that
//! timestamps every `data:` line the moment its chunk is read.
//!
//! The harness talks to loopback only, so there is no TLS, no redirects and no keep-alive;
//! using `std::net` keeps the simulator crate free of an HTTP client dependency.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Connect, write one request, and return the socket wrapped for reading.
fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<BufReader<TcpStream>> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("cannot connect to the node API at {addr}"))?;
    s.set_nodelay(true)?;
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    Ok(BufReader::new(s))
}

/// Reads the status line and headers; returns the status and whether the body is chunked.
fn head(r: &mut BufReader<TcpStream>) -> Result<(u16, bool)> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("not an HTTP status line: {line:?}"))?;
    let mut chunked = false;
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        let l = line.to_ascii_lowercase();
        if l.starts_with("transfer-encoding:") && l.contains("chunked") {
            chunked = true;
        }
    }
    Ok((status, chunked))
}

/// Largest chunk of a chunked body accepted.
const MAX_CHUNK_BYTES: usize = 16 << 20;

/// Reads one chunk of a chunked body; `None` at the last (empty) chunk.
fn chunk(r: &mut BufReader<TcpStream>) -> Result<Option<Vec<u8>>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let size_text = line.trim().split(';').next().unwrap_or("");
    let size = usize::from_str_radix(size_text, 16)
        .with_context(|| format!("bad chunk size line {line:?}"))?;
    if size == 0 {
        return Ok(None);
    }
    // The node's answers are small; a size past this is a broken stream, not data.
    anyhow::ensure!(
        size <= MAX_CHUNK_BYTES,
        "chunk of {size} bytes is over {MAX_CHUNK_BYTES}"
    );
    let mut buf = vec![0; size + 2];
    r.read_exact(&mut buf)?;
    buf.truncate(size);
    Ok(Some(buf))
}

/// One request; returns the status and the body parsed as JSON.
pub(crate) fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, serde_json::Value)> {
    let mut r = send(addr, method, path, body)?;
    let (status, chunked) = head(&mut r)?;
    let mut bytes = Vec::new();
    if chunked {
        while let Some(c) = chunk(&mut r)? {
            bytes.extend_from_slice(&c);
        }
    } else {
        r.read_to_end(&mut bytes)?;
    }
    let v = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    Ok((status, v))
}

/// A request that must succeed (2xx); the node's `error` message otherwise.
pub(crate) fn ok(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<serde_json::Value> {
    let (status, v) = call(addr, method, path, body)?;
    if !(200..300).contains(&status) {
        bail!(
            "{method} {path} on {addr}: HTTP {status}: {}",
            v.get("error").and_then(|e| e.as_str()).unwrap_or("")
        );
    }
    Ok(v)
}

/// Follows an SSE stream until the server closes it, calling `on_data(t, json)` for every
/// `data:` line with `t` taken right after the chunk carrying it was read.
pub(crate) fn follow_sse(
    addr: SocketAddr,
    path: &str,
    mut on_data: impl FnMut(Instant, serde_json::Value),
    mut on_open: impl FnMut(),
) -> Result<()> {
    let mut r = send(addr, "GET", path, None)?;
    let (status, chunked) = head(&mut r)?;
    if status != 200 || !chunked {
        bail!("GET {path} on {addr}: HTTP {status}, expected a chunked event stream");
    }
    on_open();
    let mut pending = String::new();
    while let Some(c) = chunk(&mut r)? {
        let t = Instant::now();
        pending.push_str(&String::from_utf8_lossy(&c));
        while let Some(nl) = pending.find('\n') {
            let line: String = pending.drain(..=nl).collect();
            if let Some(data) = line.trim_end().strip_prefix("data:")
                && let Ok(v) = serde_json::from_str(data.trim())
            {
                on_data(t, v);
            }
        }
    }
    Ok(())
}

//! The Lambda Runtime API (AWS "Using the Lambda runtime API for custom runtimes"), served
//! on loopback for one instance: `GET .../invocation/next`, `POST .../{id}/response`,
//! `POST .../{id}/error`, `POST .../init/error`. One listener per instance, so an answer is
//! always known to come from the process it was handed to (a timeout or crash ends exactly
//! that process). A small HTTP/1.1 server of its own: the only client is the runtime's own
//! interface client, and every buffer is bounded.

use super::instance::Slot;
use bytes::Bytes;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Lambda's response payload limit (6 MB), plus room for the JSON framing.
pub const MAX_PAYLOAD: usize = 6 * 1024 * 1024 + 64 * 1024;
const MAX_HEAD: usize = 16 * 1024;
const PREFIX: &str = "/2018-06-01/runtime/";

/// Accepts the instance's connections until the listener is dropped with the slot's task.
pub async fn serve(listener: TcpListener, slot: Arc<Slot>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream, slot.clone()));
    }
}

struct Request {
    method: String,
    path: String,
    body: Bytes,
}

async fn connection(mut stream: TcpStream, slot: Arc<Slot>) {
    let mut buf = Vec::with_capacity(4096);
    loop {
        let req = match read_request(&mut stream, &mut buf).await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(status) => {
                let _ = respond(
                    &mut stream,
                    status,
                    &[],
                    b"{\"errorMessage\":\"bad request\"}",
                )
                .await;
                return;
            }
        };
        let ok = handle(&mut stream, &slot, req).await;
        if !ok {
            return;
        }
    }
}

/// Answers one request; `false` when the connection is gone.
async fn handle(stream: &mut TcpStream, slot: &Slot, req: Request) -> bool {
    let Some(rest) = req.path.strip_prefix(PREFIX) else {
        return respond(stream, 404, &[], b"{\"errorMessage\":\"not found\"}").await;
    };
    let accepted = b"{\"status\":\"OK\"}";
    match (req.method.as_str(), rest) {
        ("GET", "invocation/next") => {
            let next = slot.next().await;
            let mut deadline = [0u8; 20];
            let headers = [
                ("Lambda-Runtime-Aws-Request-Id", next.id.as_str()),
                (
                    "Lambda-Runtime-Deadline-Ms",
                    decimal(next.deadline_ms, &mut deadline),
                ),
                ("Lambda-Runtime-Invoked-Function-Arn", slot.arn.as_str()),
                ("Lambda-Runtime-Trace-Id", next.trace_id.as_str()),
                ("Content-Type", "application/json"),
            ];
            respond(stream, 200, &headers, &next.event).await
        }
        ("POST", "init/error") => {
            slot.init_error(req.body);
            respond(stream, 202, &[], accepted).await
        }
        ("POST", r) => {
            let Some(r) = r.strip_prefix("invocation/") else {
                return respond(stream, 404, &[], b"{\"errorMessage\":\"not found\"}").await;
            };
            let (id, what) = match r.rsplit_once('/') {
                Some((id, w)) if w == "response" || w == "error" => (id, w),
                _ => return respond(stream, 404, &[], b"{\"errorMessage\":\"not found\"}").await,
            };
            if slot.complete(id, what == "response", req.body) {
                respond(stream, 202, &[], accepted).await
            } else {
                // AWS's answer to an unknown or already answered request id.
                respond(
                    stream,
                    400,
                    &[],
                    b"{\"errorMessage\":\"Invalid request ID\",\"errorType\":\"InvalidRequestID\"}",
                )
                .await
            }
        }
        _ => {
            respond(
                stream,
                405,
                &[],
                b"{\"errorMessage\":\"method not allowed\"}",
            )
            .await
        }
    }
}

/// Writes one answer in a single write (head and body in one buffer: one syscall, one
/// segment), formatted without `format!`: this runs twice per invocation.
async fn respond(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> bool {
    let reason = match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        404 => "Not Found",
        413 => "Payload Too Large",
        _ => "Error",
    };
    let head_len: usize = headers.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
    let mut out = Vec::with_capacity(head_len + 128 + body.len());
    let mut num = [0u8; 20];
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(decimal(u64::from(status), &mut num).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (k, v) in headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !headers.iter().any(|(k, _)| *k == "Content-Type") {
        out.extend_from_slice(b"Content-Type: application/json\r\n");
    }
    out.extend_from_slice(b"Content-Length: ");
    out.extend_from_slice(decimal(body.len() as u64, &mut num).as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
    stream.write_all(&out).await.is_ok()
}

/// `n` in decimal, written at the end of `buf`.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

/// Reads one request (head and body, Content-Length or chunked). `Ok(None)`: the client
/// closed the connection between requests. `Err(status)`: malformed or too large.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Option<Request>, u16> {
    let head_len = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err(431);
        }
        if !fill(stream, buf).await? {
            return if buf.is_empty() { Ok(None) } else { Err(400) };
        }
    };
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Request::new(&mut headers);
    if !matches!(
        parsed.parse(&buf[..head_len]),
        Ok(httparse::Status::Complete(_))
    ) {
        return Err(400);
    }
    let method = parsed.method.unwrap_or("").to_string();
    let path = parsed.path.unwrap_or("").to_string();
    let mut length = None;
    let mut chunked = false;
    for h in parsed.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or(400u16)?;
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h.value.eq_ignore_ascii_case(b"chunked");
        }
    }
    buf.drain(..head_len);
    let body = if chunked {
        read_chunked(stream, buf).await?
    } else {
        let n = length.unwrap_or(0);
        if n > MAX_PAYLOAD {
            return Err(413);
        }
        while buf.len() < n {
            if !fill(stream, buf).await? {
                return Err(400);
            }
        }
        let body: Vec<u8> = buf.drain(..n).collect();
        body
    };
    Ok(Some(Request {
        method,
        path,
        body: Bytes::from(body),
    }))
}

/// RFC 9112 7.1: chunk sizes in hex, extensions ignored, trailers skipped.
async fn read_chunked(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Vec<u8>, u16> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(i) = find(buf, b"\r\n") {
                break i;
            }
            if buf.len() > MAX_HEAD || !fill(stream, buf).await? {
                return Err(400);
            }
        };
        let line = std::str::from_utf8(&buf[..line_end]).map_err(|_| 400u16)?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| 400u16)?;
        buf.drain(..line_end + 2);
        if size == 0 {
            // Trailers end at an empty line.
            loop {
                let end = loop {
                    if let Some(i) = find(buf, b"\r\n") {
                        break i;
                    }
                    if buf.len() > MAX_HEAD || !fill(stream, buf).await? {
                        return Err(400);
                    }
                };
                buf.drain(..end + 2);
                if end == 0 {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_PAYLOAD {
            return Err(413);
        }
        while buf.len() < size + 2 {
            if !fill(stream, buf).await? {
                return Err(400);
            }
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
    }
}

/// Reads more bytes straight into `buf`'s spare room (no zeroed stack buffer to copy
/// from: that was a 16 KiB memset per read); `false` at end of stream.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<bool, u16> {
    buf.reserve(16 * 1024);
    match stream.read_buf(buf).await {
        Ok(0) => Ok(false),
        Ok(_) => Ok(true),
        Err(_) => Ok(false),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

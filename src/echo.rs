//! `apigate echo`: a small backend that answers JSON describing the request it received,
//! so the bundled example works with no other server.

use async_trait::async_trait;
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use serde_json::{json, Map, Value};

/// Bodies larger than this are not echoed (the reply says how long they were).
const MAX_ECHO_BODY: usize = 1024 * 1024;

pub struct Echo;

#[async_trait]
impl ServeHttp for Echo {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let mut body = Vec::new();
        let mut total = 0usize;
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) => {
                    total += chunk.len();
                    if body.len() < MAX_ECHO_BODY {
                        let room = MAX_ECHO_BODY - body.len();
                        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    log::debug!("echo: reading the body failed: {e}");
                    break;
                }
            }
        }
        let req = session.req_header();
        let mut headers = Map::new();
        for (name, value) in req.headers.iter() {
            let entry = headers
                .entry(name.as_str().to_string())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(list) = entry {
                list.push(Value::String(
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                ));
            }
        }
        let reply = json!({
            "method": req.method.as_str(),
            "path": req.uri.path(),
            "query": req.uri.query().unwrap_or(""),
            "headers": headers,
            "body": String::from_utf8_lossy(&body),
            "bodyLength": total,
        });
        let bytes = serde_json::to_vec_pretty(&reply).unwrap_or_default();
        http::Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .header("content-length", bytes.len())
            .body(bytes)
            .unwrap_or_default()
    }
}

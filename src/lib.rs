//! apigate: a local stand-in for AWS API Gateway (HTTP APIs), built on Pingora.
//!
//! Data flows one way, and the modules follow it. Around it all, `listener` holds each client
//! connection to its limits (count, keep-alive, head time and size, body time) and `tls`
//! terminates HTTPS (and speaks TLS to https backends).
//!
//! 1. `config`: each external format (the directory layout, the bundle) is read and
//!    lowered into one format-independent model (`config::model`).
//! 2. `table`: the model is validated across files and compiled once into an immutable
//!    table (stages, `routing` tries, `mapping`s, policies, integrations), published
//!    atomically by `reload` and replaced whole on SIGHUP.
//! 3. `proxy`: Pingora's hooks. Per request a typed context (`proxy::Ctx`) holds the table
//!    the request started with; `request_path` rewrites the path to its one canonical form
//!    (or refuses it), which every later step reads; `request_head` screens headers and
//!    framing; the stage and route are selected,
//!    and the route's `policy::chain` admits the request or returns a `rejection`.
//! 4. `integration`: the admitted request is handed to the route's integration kind
//!    (HTTP_PROXY today), whose answer `mapping` may rewrite on the way back.
//! 5. `metrics` and `accesslog` record the outcome; `lifecycle` counts requests in flight
//!    and drains them on SIGTERM.

pub mod accesslog;
pub mod config;
pub mod dispatch;
pub mod echo;
pub mod integration;
pub mod lambda;
pub mod lifecycle;
pub mod listener;
pub mod load;
pub mod mapping;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod rejection;
pub mod reload;
pub mod request_head;
pub mod request_id;
pub mod request_path;
pub mod routing;
pub mod table;
pub mod tls;

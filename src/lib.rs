//! apigate: a local stand-in for AWS API Gateway (HTTP APIs), built on Pingora.
//!
//! Data flows one way: configuration files (`config`) are validated and compiled into an
//! immutable runtime table (`table`, with `routing` and `mapping`), published atomically
//! (`reload`), and read per request by the Pingora proxy (`proxy`) and its policies (`policy`).

pub mod accesslog;
pub mod config;
pub mod echo;
pub mod mapping;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod reload;
pub mod routing;
pub mod table;
pub mod upstream;

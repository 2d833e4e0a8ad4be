//! Access and traffic policies, each compiled once at config load.
pub mod chain;
pub mod check_header;
pub mod condition;
pub mod cors;
pub mod ipfilter;
pub mod jwt;
pub mod lambda_authorizer;
pub mod ratelimit;
pub mod subscription;
pub mod throttle;

//! Integrations: what a route hands its admitted requests to. A closed set of kinds, each
//! compiled at load: HTTP_PROXY, AWS_PROXY (Lambda) and AGGREGATE. A kind that is not a
//! plain proxy answers from `request_filter` itself.

pub mod aggregate;
pub mod aws_proxy;
pub mod http_proxy;

pub use aws_proxy::AwsProxy;
pub use http_proxy::HttpProxy;

/// An integration compiled for one stage (stage variables substituted): its kind and its
/// own parameter mappings.
#[derive(Debug)]
pub struct Integration {
    pub id: String,
    pub kind: Kind,
    pub request: crate::mapping::RequestMapping,
    pub response: crate::mapping::ResponseMapping,
}

/// The kinds of integration, as `IntegrationType` names them.
// Built once per stage and shared through an `Arc`: the size of a variant costs nothing
// per request, and boxing `HttpProxy` would add a pointer chase to every proxied request.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Kind {
    /// `HTTP_PROXY`: the request is forwarded to a URL, the answer streamed back.
    HttpProxy(HttpProxy),
    /// `AWS_PROXY`: a Lambda function invoked with the request as an event; answered from
    /// `request_filter` (`proxy::lambda`).
    AwsProxy(AwsProxy),
    /// `AGGREGATE`: several integrations called for one request, their JSON answers merged;
    /// answered from `request_filter` (`proxy::aggregate`).
    Aggregate(aggregate::Aggregate),
}

//! Headers no mapping or header policy may set: owned by the gateway, the connection, or
//! AWS. A rule on what configurations may say, so every format's reader checks it (with its
//! own line) and `mapping` compiles against it.

/// Why a header cannot be mapped: who owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// apigate writes it itself on every forwarded request or every answer; a mapping
    /// would fight the gateway (or lie to the backend about the client).
    Gateway,
    /// Message framing and connection management (hop-by-hop, RFC 9110 7.6.1; framing,
    /// RFC 9112 6): set per connection by the HTTP layer, never per route.
    Framing,
    /// Reserved by AWS HTTP APIs ("Reserved headers" of the parameter-mapping guide): a
    /// configuration AWS refuses is refused here too, so it deploys unchanged.
    Aws,
}

impl Owner {
    pub fn explain(self) -> &'static str {
        match self {
            Owner::Gateway => "the gateway sets it itself",
            Owner::Framing => "it frames the message or manages the connection (hop-by-hop)",
            Owner::Aws => "AWS HTTP APIs reserve it (AWS refuses this mapping too)",
        }
    }
}

/// Exact names (lowercase) and their owner. Exactly what apigate writes is `Gateway`:
/// `Host` (the integration's), `X-Forwarded-For`/`-Proto`/`-Port`, `Forwarded` and `Via`
/// on requests; `apigw-*` and, with `CorsConfiguration`, `access-control-*` on answers.
/// `X-Forwarded-Host`, `-Prefix` and `-Server` are not here: apigate does not set them (it
/// only removes them from clients that are not trusted proxies), so an operator may set or
/// remove them, although AWS's list names `X-Forwarded-Host`.
const RESERVED: [(&str, Owner); 20] = [
    ("host", Owner::Gateway),
    ("x-forwarded-for", Owner::Gateway),
    ("x-forwarded-proto", Owner::Gateway),
    ("x-forwarded-port", Owner::Gateway),
    ("forwarded", Owner::Gateway),
    ("via", Owner::Gateway),
    ("connection", Owner::Framing),
    ("content-length", Owner::Framing),
    ("transfer-encoding", Owner::Framing),
    ("te", Owner::Framing),
    ("trailer", Owner::Framing),
    ("trailers", Owner::Framing),
    ("upgrade", Owner::Framing),
    ("keep-alive", Owner::Framing),
    ("proxy-authenticate", Owner::Framing),
    ("proxy-authorization", Owner::Framing),
    ("authorization", Owner::Aws),
    ("content-encoding", Owner::Aws),
    ("content-location", Owner::Aws),
    ("origin", Owner::Aws),
];

/// Reserved name prefixes (lowercase) and their owner.
const RESERVED_PREFIXES: [(&str, Owner); 4] = [
    ("apigw-", Owner::Gateway),
    ("access-control-", Owner::Gateway),
    ("x-amz-", Owner::Aws),
    ("x-amzn-", Owner::Aws),
];

/// Who owns `name`, if mappings may not touch it.
pub fn reserved_header(name: &str) -> Option<Owner> {
    let n = name.to_ascii_lowercase();
    RESERVED
        .iter()
        .find(|(r, _)| *r == n)
        .or_else(|| RESERVED_PREFIXES.iter().find(|(p, _)| n.starts_with(p)))
        .map(|(_, owner)| *owner)
}

/// Whether mappings may not touch `name` (see [`reserved_header`]).
pub fn is_reserved_header(name: &str) -> bool {
    reserved_header(name).is_some()
}

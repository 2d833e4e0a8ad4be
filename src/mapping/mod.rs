//! AWS parameter mapping: value expressions (`$request.header.X`, `${context.requestId}`,
//! static text, mixes) and the `append|overwrite|remove:header.X` style operations,
//! parsed once at config load and evaluated per request without re-parsing.
//!
//! - [`context`]: the `$context` vocabulary, shared with access-log formats.
//! - `template`: value expressions ([`Template`]) and the names they reference.
//! - `vars`: what one request supplies to them ([`Vars`]).
//! - `ops`: compiled mappings ([`RequestMapping`], [`ResponseMapping`]), reserved headers,
//!   and [`apply_header`].

pub mod context;
mod ops;
mod template;
mod vars;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use ops::{
    apply_header, apply_header_value, is_reserved_header, Action, Header, HeaderSink,
    RequestMapping, RequestOp, ResponseMapping, ResponseOp, VALID_STATUS,
};
pub use template::{mapping_references, references, Reference, Side, Template, Var};
pub use vars::{query_pairs, Vars};

/// Verified JWT claims, as given to `$context.authorizer.claims.NAME`.
pub use crate::policy::jwt::Claims;

//! HTTP_PROXY: the request forwarded to the IntegrationUri through Pingora's pooled
//! connectors. `target` is the URI compiled at load, `rewrite` builds the backend's path
//! and query, `forwarding` the headers a proxy adds and removes.

mod forwarding;
mod rewrite;
mod target;

pub use forwarding::{strip_hop_by_hop, Forwarding};
pub(crate) use rewrite::{edit_query, mapped_path};
pub use target::{Target, UriError};

use crate::mapping::{apply_header, RequestMapping, RequestOp, Vars};
use http::Method;
use pingora_core::Result;
use pingora_http::RequestHeader;

/// An HTTP_PROXY integration compiled for one stage.
#[derive(Debug)]
pub struct HttpProxy {
    pub target: Target,
    /// `None`: the client's method (`ANY`).
    pub method: Option<Method>,
}

impl HttpProxy {
    /// Turns the client's request head (already copied into `up` by Pingora) into the
    /// backend's: URI, method, forwarding headers, then the route's header mappings.
    /// `append` is the client path a `$default` route appends to the URI's path.
    pub fn write_request(
        &self,
        client: &RequestHeader,
        up: &mut RequestHeader,
        maps: &[RequestMapping],
        vars: &Vars<'_>,
        append: Option<&str>,
        forwarding: &Forwarding<'_>,
    ) -> Result<()> {
        up.set_uri(rewrite::backend_uri(
            &self.target,
            client.uri.query(),
            maps,
            vars,
            append,
        )?);
        if let Some(m) = &self.method {
            up.set_method(m.clone());
        }
        up.insert_header(http::header::HOST, self.target.host_header.as_str())?;
        forwarding.write(client, up)?;
        for map in maps {
            for op in &map.ops {
                if let RequestOp::Header(action, h, t) = op {
                    apply_header(up, *action, h, &t.eval(vars, false))?;
                }
            }
        }
        Ok(())
    }
}

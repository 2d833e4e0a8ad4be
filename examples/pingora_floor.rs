//! The floor for `loadtest/compare.py`: the smallest Pingora proxy, with apigate's runtime and
//! peer settings (one current-thread worker, mimalloc, the same timeouts, no compression
//! module, no idle timer) and nothing else: a fixed peer, no routing, no policies, no headers.
//! What it costs per request is Pingora's share of apigate's cost; the rest is apigate's.
//!
//!     cargo run --release --example pingora_floor -- 127.0.0.1:8090 127.0.0.1:9000

use async_trait::async_trait;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{RunArgs, Server};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::Result;
use pingora_proxy::{ProxyHttp, Session};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Floor {
    peer: HttpPeer,
}

#[async_trait]
impl ProxyHttp for Floor {
    type CTX = ();

    fn new_ctx(&self) {}

    fn init_downstream_modules(&self, _modules: &mut pingora_core::modules::http::HttpModules) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(self.peer.clone()))
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(listen), Some(backend)) = (args.first(), args.get(1)) else {
        eprintln!("usage: pingora_floor LISTEN_ADDR BACKEND_ADDR");
        return ExitCode::FAILURE;
    };
    let Ok(backend) = backend.parse::<SocketAddr>() else {
        eprintln!("{backend:?} is not HOST:PORT");
        return ExitCode::FAILURE;
    };
    let mut peer = HttpPeer::new(backend, false, String::new());
    let timeout = Duration::from_secs(30);
    peer.options.connection_timeout = Some(timeout);
    peer.options.total_connection_timeout = Some(timeout);
    peer.options.read_timeout = Some(timeout);
    peer.options.write_timeout = Some(timeout);
    let conf = ServerConf {
        threads: 1,
        work_stealing: false,
        upstream_keepalive_pool_size: 128,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy =
        pingora_proxy::http_proxy_service_with_name(&server.configuration, Floor { peer }, "floor");
    proxy.add_tcp(listen);
    server.add_service(proxy);
    server.run(RunArgs::default());
    ExitCode::SUCCESS
}

//! The `apigate` command: `serve`, `check` and `echo`.

use apigate::echo::Echo;
use apigate::proxy::Gateway;
use apigate::reload::{self, Reloader, SharedTable};
use arc_swap::ArcSwap;
use clap::{Parser, Subcommand};
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{RunArgs, Server};
use pingora_core::services::background::background_service;
use pingora_core::services::listening::Service;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// glibc malloc showed up as ~13% of proxy CPU under load; mimalloc's thread-local free lists
/// make the per-request allocations of Pingora and the policies cheap.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "apigate",
    version,
    about = "A local stand-in for AWS API Gateway (HTTP APIs), built on Pingora"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the configuration (flags override gateway.json).
    Serve {
        #[arg(long)]
        conf: PathBuf,
        /// HOST:PORT for API traffic.
        #[arg(long)]
        listen: Option<String>,
        /// HOST:PORT for Prometheus metrics at /metrics.
        #[arg(long)]
        metrics: Option<String>,
        /// Worker threads.
        #[arg(long)]
        threads: Option<usize>,
        #[command(flatten)]
        tls: apigate::tls::TlsFlags,
    },
    /// Validate the configuration: exit 0, or print every error and exit 1.
    Check {
        #[arg(long)]
        conf: PathBuf,
    },
    /// A backend that answers JSON describing each request.
    Echo {
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: String,
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Serve HTTPS with this PEM certificate chain (with --tls-key).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<String>,
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<String>,
    },
}

fn main() -> ExitCode {
    // Clients that hang up mid-request make Pingora log at error level; apigate counts those
    // itself (status 499), so they stay out of the default log. RUST_LOG overrides.
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("warn,apigate=info,pingora_proxy=off"),
    )
    .init();
    // SIGHUP's default action ends the process: listen from the start, so that a reload
    // signal sent while the gateway boots is a reload, not a crash.
    if let Err(e) = reload::listen_for_sighup() {
        log::error!("cannot listen for SIGHUP, reload disabled: {e}");
    }
    match Cli::parse().command {
        Command::Check { conf } => check(conf),
        Command::Serve {
            conf,
            listen,
            metrics,
            threads,
            tls,
        } => serve(conf, listen, metrics, threads, tls),
        Command::Echo {
            listen,
            threads,
            tls_cert,
            tls_key,
        } => echo(listen, threads, tls_cert.zip(tls_key)),
    }
}

fn check(conf: PathBuf) -> ExitCode {
    match reload::check_table(&conf, None) {
        Ok(table) => {
            let routes: usize = table.stages().map(|s| s.router.routes().len()).sum();
            println!(
                "{}: OK ({} stage(s), {routes} route(s) served)",
                conf.display(),
                table.stages().count()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprint!("{}: {errors}", conf.display());
            ExitCode::FAILURE
        }
    }
}

fn serve(
    conf: PathBuf,
    listen: Option<String>,
    metrics: Option<String>,
    threads: Option<usize>,
    tls_flags: apigate::tls::TlsFlags,
) -> ExitCode {
    let table = match reload::load_table(&conf, None) {
        Ok(t) => t,
        Err(errors) => {
            eprintln!("{}: {errors}apigate: not started", conf.display());
            return ExitCode::FAILURE;
        }
    };
    let listen = listen.unwrap_or_else(|| table.settings.listen.clone());
    let metrics_listen = metrics.or_else(|| table.settings.metrics_listen.clone());
    let threads = threads.unwrap_or(table.settings.threads).max(1);
    for (flag, addr) in [
        ("--listen", Some(&listen)),
        ("--metrics", metrics_listen.as_ref()),
    ] {
        if let Some(Err(e)) = addr.map(|a| can_listen(a)) {
            eprintln!(
                "apigate: {flag} {}: {e}; not started",
                addr.map_or("", |a| a)
            );
            return ExitCode::FAILURE;
        }
    }

    let server_conf = ServerConf {
        threads,
        // One current-thread runtime per worker: no cross-thread task stealing on the hot path.
        work_stealing: false,
        upstream_keepalive_pool_size: table.settings.keepalive_pool_size,
        // Upper bound only: `exit_when_drained` exits as soon as requests are done.
        grace_period_seconds: Some(31),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let shared: SharedTable = Arc::new(ArcSwap::from_pointee(table));
    let mut server = Server::new_with_opt_and_conf(None, server_conf);
    server.bootstrap();

    let mut proxy = pingora_proxy::http_proxy_service_with_name(
        &server.configuration,
        Gateway::new(shared.clone()),
        "apigate",
    );
    if let Some(app) = proxy.app_logic_mut() {
        // CONNECT reaches request_filter and gets the gateway's JSON 400 instead of
        // Pingora's bare 405 (the contract never answers 405); nothing is ever tunnelled.
        let mut options = pingora_core::apps::HttpServerOptions::default();
        options.allow_connect_method_proxying = true;
        options.h2c = shared.load().settings.http2_cleartext;
        app.server_options = Some(options);
    }
    let scheme = match tls_flags.add_listener(&mut proxy, &listen, &shared.load().settings) {
        Ok(scheme) => scheme,
        Err(e) => {
            eprintln!("apigate: {e}; not started");
            return ExitCode::FAILURE;
        }
    };
    server.add_service(proxy);
    if let Some(addr) = &metrics_listen {
        let mut service = Service::new("metrics".to_string(), apigate::metrics::MetricsApp);
        service.add_tcp(addr);
        server.add_service(service);
    }
    apigate::metrics::metrics().mark_loaded();
    server.add_service(background_service(
        "config reload",
        Reloader {
            path: conf,
            table: shared,
        },
    ));

    apigate::lifecycle::exit_when_drained(server.watch_execution_phase(), || {
        apigate::lambda::shutdown(std::time::Duration::from_secs(2));
        apigate::accesslog::flush(std::time::Duration::from_secs(1))
    });
    log::info!("apigate listening on {scheme}://{listen}");
    server.run(RunArgs {
        shutdown_signal: Box::new(apigate::lifecycle::DrainOnSignal),
    });
    ExitCode::SUCCESS
}

/// Whether `addr` is HOST:PORT and free to bind. Pingora would retry a busy port forever
/// and panic in a service thread on a bad address, leaving a process that serves nothing.
fn can_listen(addr: &str) -> Result<(), String> {
    let parsed: std::net::SocketAddr = addr
        .parse()
        .map_err(|_| "not an address like 127.0.0.1:8080".to_string())?;
    std::net::TcpListener::bind(parsed)
        .map(drop)
        .map_err(|e| e.to_string())
}

fn echo(listen: String, threads: usize, tls: Option<(String, String)>) -> ExitCode {
    if let Err(e) = can_listen(&listen) {
        eprintln!("apigate echo: --listen {listen}: {e}; not started");
        return ExitCode::FAILURE;
    }
    let server_conf = ServerConf {
        threads: threads.max(1),
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, server_conf);
    server.bootstrap();
    let mut service = Service::new("echo".to_string(), Echo);
    let scheme = match &tls {
        Some((cert, key)) => {
            if let Err(e) = apigate::tls::listener::add_echo_tls(&mut service, &listen, cert, key) {
                eprintln!("apigate echo: {e}; not started");
                return ExitCode::FAILURE;
            }
            "https"
        }
        None => {
            service.add_tcp(&listen);
            "http"
        }
    };
    server.add_service(service);
    log::info!("echo backend on {scheme}://{listen}");
    server.run(RunArgs {
        shutdown_signal: Box::new(apigate::lifecycle::DrainOnSignal),
    });
    ExitCode::SUCCESS
}

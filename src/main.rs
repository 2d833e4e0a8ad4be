//! The `apigate` command: `serve`, `check` and `echo`.

use apigate::config::cloudformation;
use apigate::echo::Echo;
use apigate::load::Inputs;
use apigate::proxy::Gateway;
use apigate::reload::{self, Reloader, SharedTable};
use arc_swap::ArcSwap;
use clap::{Parser, Subcommand};
use pingora_core::listeners::{L4BufferSettings, ListenerConfig};
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
        /// A configuration; repeat for several APIs (the first one's gateway.json and
        /// domains/ apply).
        #[arg(long, required = true)]
        conf: Vec<PathBuf>,
        /// HOST:PORT for API traffic.
        #[arg(long)]
        listen: Option<String>,
        /// HOST:PORT for Prometheus metrics at /metrics.
        #[arg(long)]
        metrics: Option<String>,
        /// Worker threads (1-256, as `Threads` in gateway.json).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
        threads: Option<u16>,
        #[command(flatten)]
        tls: apigate::tls::TlsFlags,
        #[command(flatten)]
        params: ParamArgs,
        /// Invoke functions not defined locally through this Lambda Invoke API
        /// (`sam local start-lambda`, LocalStack), over any LambdaEndpoint in gateway.json.
        #[arg(long, value_name = "URL")]
        lambda_endpoint: Option<String>,
    },
    /// Validate the configuration: exit 0, or print every error and exit 1.
    Check {
        /// A configuration; repeat for several APIs, as for serve.
        #[arg(long, required = true)]
        conf: Vec<PathBuf>,
        #[command(flatten)]
        params: ParamArgs,
        /// Also list what is ignored, as AWS ignores it.
        #[arg(long)]
        verbose: bool,
        /// Invoke functions not defined locally through this Lambda Invoke API
        /// (`sam local start-lambda`, LocalStack), over any LambdaEndpoint in gateway.json.
        #[arg(long, value_name = "URL")]
        lambda_endpoint: Option<String>,
    },
    /// Write the loaded API back out: as `aws apigatewayv2 export-api` would (openapi) or
    /// as the directory layout (dir).
    Export {
        #[arg(long)]
        conf: PathBuf,
        /// Which API, by name or logical id, when the document holds several (a template
        /// with several HTTP APIs); default: the first.
        #[arg(long)]
        api: Option<String>,
        #[arg(long, value_enum, default_value = "openapi")]
        format: apigate::config::export::Format,
        /// Where to write: a file (openapi, default stdout) or a directory (dir, required).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        params: ParamArgs,
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

/// A template's parameter values (CloudFormation/SAM `Parameters`).
#[derive(clap::Args)]
struct ParamArgs {
    /// NAME=VALUE for a template parameter (repeatable; wins over --params).
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = cloudformation::parse_param)]
    param: Vec<(String, String)>,
    /// A parameters file: [{"ParameterKey":..,"ParameterValue":..}] or {"Parameters":{..}}.
    #[arg(long = "params", value_name = "FILE")]
    params_file: Option<PathBuf>,
}

impl ParamArgs {
    fn values(self) -> Result<cloudformation::Params, String> {
        let mut out = match &self.params_file {
            Some(f) => cloudformation::read_params_file(f)?,
            None => cloudformation::Params::new(),
        };
        out.extend(self.param);
        Ok(out)
    }
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
        Command::Check {
            conf,
            params,
            verbose,
            lambda_endpoint,
        } => match params.values() {
            Ok(params) => check(
                &Inputs {
                    paths: conf,
                    params,
                    lambda_endpoint,
                },
                verbose,
            ),
            Err(e) => param_error(&e),
        },
        Command::Serve {
            conf,
            listen,
            metrics,
            threads,
            tls,
            params,
            lambda_endpoint,
        } => match params.values() {
            Ok(params) => serve(
                Inputs {
                    paths: conf,
                    params,
                    lambda_endpoint,
                },
                listen,
                metrics,
                threads.map(usize::from),
                tls,
            ),
            Err(e) => param_error(&e),
        },
        Command::Export {
            conf,
            api,
            format,
            out,
            params,
        } => match params.values() {
            Ok(p) => export(conf, api.as_deref(), &p, format, out),
            Err(e) => param_error(&e),
        },
        Command::Echo {
            listen,
            threads,
            tls_cert,
            tls_key,
        } => echo(listen, threads, tls_cert.zip(tls_key)),
    }
}

fn param_error(e: &str) -> ExitCode {
    eprintln!("apigate: --params {e}");
    ExitCode::FAILURE
}

fn check(inputs: &Inputs, verbose: bool) -> ExitCode {
    let mut notes = apigate::load::Notes::default();
    let loaded = apigate::load::load(inputs, None, false, &mut notes);
    print_notes(&notes, verbose);
    let shown = inputs
        .paths
        .iter()
        .map(|c| c.display().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    match loaded {
        Ok(loaded) => {
            let table = &loaded.table;
            let all = std::iter::once(table).chain(
                table
                    .apis
                    .iter()
                    .flat_map(|a| a.others().iter().map(|t| &**t)),
            );
            let (mut stages, mut routes) = (0, 0);
            for t in all {
                stages += t.stages().count();
                routes += t.stages().map(|s| s.router.routes().len()).sum::<usize>();
            }
            let apis = match loaded.apis {
                1 => String::new(),
                n => format!("{n} APIs, "),
            };
            let pending = match loaded.pending_routes {
                0 => String::new(),
                n => format!(", {n} route(s) not served yet: see the warnings"),
            };
            println!("{shown}: OK ({apis}{stages} stage(s), {routes} route(s) served{pending})");
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprint!("{shown}: {errors}");
            ExitCode::FAILURE
        }
    }
}

/// What a document holds that is not served (warnings), and with `verbose` what was
/// ignored: never a silent drop.
fn print_notes(notes: &apigate::load::Notes, verbose: bool) {
    for w in &notes.warnings {
        println!("warning: {w}");
    }
    if verbose {
        for i in &notes.ignored {
            println!("ignored: {i}");
        }
    }
}

fn export(
    conf: PathBuf,
    api: Option<&str>,
    params: &cloudformation::Params,
    format: apigate::config::export::Format,
    out: Option<PathBuf>,
) -> ExitCode {
    let chosen = apigate::config::load_all_with(&conf, params).and_then(|all| pick(all, api));
    let config = match chosen {
        Ok(c) if c.errors.is_empty() => c,
        Ok(c) => {
            let errors = apigate::config::ConfigErrors(c.errors);
            eprint!("{}: {errors}", conf.display());
            return ExitCode::FAILURE;
        }
        Err(errors) => {
            eprint!("{}: {errors}", conf.display());
            return ExitCode::FAILURE;
        }
    };
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    if config.dialect == apigate::rejection::Dialect::Apim {
        eprintln!("warning: {}: what the AWS formats cannot hold is not written (subscription keys, check-header, quotas, return-response, mock-response, on-error, validate-jwt's own messages, APIM's error bodies)", conf.display());
    }
    match apigate::config::export::write(&config, format, out.as_deref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("apigate export: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The API `api` names (its id: a template's logical id when it has several APIs, else
/// its Name), or the first.
fn pick(
    all: Vec<apigate::config::Config>,
    api: Option<&str>,
) -> Result<apigate::config::Config, apigate::config::ConfigErrors> {
    // An API of a template with several goes by its logical id (`Config::api_id`).
    let names: Vec<String> = all
        .iter()
        .map(|c| c.api_label().unwrap_or_default().to_string())
        .collect();
    let index = match api {
        None => Some(0),
        Some(name) => names.iter().position(|n| n == name),
    };
    match index.and_then(|i| all.into_iter().nth(i)) {
        Some(c) => Ok(c),
        None => Err(apigate::config::ConfigErrors(vec![
            apigate::config::ConfigError::new(
                "--api",
                "",
                format!("no API named {:?} here", api.unwrap_or_default()),
                format!("use one of {names:?}"),
            ),
        ])),
    }
}

fn serve(
    inputs: Inputs,
    listen: Option<String>,
    metrics: Option<String>,
    threads: Option<usize>,
    tls_flags: apigate::tls::TlsFlags,
) -> ExitCode {
    // What is read but not served is logged by `load_gateway`, at start-up and on reload.
    let table = match reload::load_gateway(&inputs, None) {
        Ok(t) => t,
        Err(errors) => {
            let first = inputs.paths.first().map(|c| c.display().to_string());
            eprintln!(
                "{}: {errors}apigate: not started",
                first.unwrap_or_default()
            );
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

    let max_connections = table.settings.conn.max_connections;
    if let Some(fds) = apigate::listener::raise_fd_limit(max_connections) {
        log::warn!(
            "MaxConnections {max_connections} needs about {} file descriptors, the limit is {fds} \
             (raise `ulimit -n` or lower MaxConnections)",
            max_connections * 2 + 256
        );
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

    let gateway = Gateway::new(shared.clone());
    let ids = gateway.request_ids();
    let mut proxy = pingora_proxy::http_proxy(&server.configuration, gateway);
    // CONNECT reaches request_filter and gets the gateway's JSON 400 instead of
    // Pingora's bare 405 (the contract never answers 405); nothing is ever tunnelled.
    let mut options = pingora_core::apps::HttpServerOptions::default();
    options.allow_connect_method_proxying = true;
    options.h2c = shared.load().settings.http2_cleartext;
    // An HTTP/2 connection with no stream open is closed like an idle HTTP/1 keep-alive one
    // (set at start; a reload does not change it).
    options.h2_idle_timeout = Some(shared.load().settings.conn.keepalive);
    proxy.server_options = Some(options);
    // The listener's app holds every client connection to `listener`'s limits and hands
    // each request to the proxy.
    let mut proxy = Service::new(
        "apigate".to_string(),
        apigate::listener::Edge::new(proxy, shared.clone(), ids),
    );
    let scheme = match tls_flags.add_listener(&mut proxy, &listen, &shared.load().settings) {
        Ok(Some(scheme)) => scheme,
        Ok(None) => {
            // No L4 read buffer on plain client connections: Pingora's default gives each
            // one 64 KiB, allocated for as long as it is open, idle or not (192 MB for 3,000
            // idle keep-alive connections); it mainly saves syscalls under TLS.
            proxy.add_listener(
                ListenerConfig::tcp(listen.as_str()).l4_buffer(L4BufferSettings {
                    read: Some(0),
                    write: None,
                }),
            );
            "http"
        }
        Err(e) => {
            eprintln!("apigate: {e}; not started");
            return ExitCode::FAILURE;
        }
    };
    server.add_service(proxy);
    let domain_certificates = |t: &apigate::table::Table| {
        t.apis
            .as_ref()
            .map_or(&[][..], |a| a.certificates())
            .to_vec()
    };
    let certificates = domain_certificates(&shared.load());
    if scheme == "http" && !certificates.is_empty() {
        log::warn!("domains/ give certificates, but the listener is plain HTTP: they apply once gateway.json has Tls (or --tls-cert)");
    }
    apigate::tls::listener::set_domain_certificates(&certificates);
    if let Some(addr) = &metrics_listen {
        let mut service = Service::new("metrics".to_string(), apigate::metrics::MetricsApp);
        service.add_tcp(addr);
        server.add_service(service);
    }
    apigate::metrics::metrics().mark_loaded();
    server.add_service(background_service(
        "config reload",
        Reloader {
            inputs,
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

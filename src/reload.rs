//! Loading a configuration, publishing it atomically, and SIGHUP reloads.

use crate::config;
use crate::config::cloudformation::Params;
use crate::table::Table;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Set by SIGHUP, taken by the reloader. A `Notify` keeps one pending permit, so a signal
/// that arrives before the reloader runs (during start-up) is a reload, not lost.
static RELOAD_REQUESTED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Listens for SIGHUP from now on, on a thread of its own (the default action of SIGHUP
/// ends the process). Call first thing in `main`.
pub fn listen_for_sighup() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    // Registered here, before returning, so no SIGHUP after this call can be missed.
    let mut hup = runtime.block_on(async { signal(SignalKind::hangup()) })?;
    std::thread::Builder::new()
        .name("sighup".into())
        .spawn(move || {
            runtime.block_on(async {
                while hup.recv().await.is_some() {
                    RELOAD_REQUESTED.notify_one();
                }
            })
        })?;
    Ok(())
}

/// The table every request reads; a reload swaps it without touching requests in flight
/// (each request holds its own `Arc` to the table it started with).
pub type SharedTable = Arc<ArcSwap<Table>>;

/// Reads and compiles the configuration at `path`, with every error found, and touches
/// nothing: this is all `apigate check` does. `previous` is the running table on reload
/// (state such as rate-limit counters carries over).
pub fn check_table(path: &Path, previous: Option<&Table>) -> Result<Table, config::ConfigErrors> {
    check_table_with(path, &Params::new(), previous)
}

/// [`check_table`] with a template's parameter values; what is read but not served (a
/// Lambda integration, IAM authorization) is logged as a warning.
pub fn check_table_with(
    path: &Path,
    params: &Params,
    previous: Option<&Table>,
) -> Result<Table, config::ConfigErrors> {
    let config = config::load_served(path, params)?;
    for w in &config.warnings {
        log::warn!("{w}");
    }
    Table::compile(&config, previous)
}

/// [`check_table`], then opens what the table writes to (access-log files, created if
/// absent): for a table that is about to serve.
pub fn load_table(path: &Path, previous: Option<&Table>) -> Result<Table, config::ConfigErrors> {
    load_table_with(path, &Params::new(), previous)
}

/// [`load_table`] with a template's parameter values.
pub fn load_table_with(
    path: &Path,
    params: &Params,
    previous: Option<&Table>,
) -> Result<Table, config::ConfigErrors> {
    let table = check_table_with(path, params, previous)?;
    let mut errors = config::ConfigErrors::default();
    for log in table.stages().filter_map(|s| s.access_log.as_ref()) {
        if let Err(e) = log.open() {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(table)
    } else {
        Err(errors)
    }
}

/// Loads every `--conf` (the first one's `gateway.json` holds the process settings, which
/// every API then shares) and the first one's `domains/`, as one table: the first API's,
/// holding the others and the dispatcher, so a reload swaps them all at once and any
/// error keeps the whole running set. `previous` gives each API its predecessor by
/// position, so rate-limit counters and caches carry over.
pub fn load_gateway(
    paths: &[PathBuf],
    params: &Params,
    previous: Option<&Table>,
) -> Result<Table, config::ConfigErrors> {
    let Some((first, rest)) = paths.split_first() else {
        return Err(config::ConfigErrors(vec![config::ConfigError::new(
            "--conf",
            "",
            "no configuration given",
            "pass --conf DIR_OR_FILE",
        )]));
    };
    let mut table = load_table_with(first, params, previous)?;
    if rest.is_empty() && !first.join("domains").is_dir() {
        return Ok(table);
    }
    let before = previous.and_then(|p| p.apis.as_ref()).map(|a| a.others());
    let mut others = Vec::with_capacity(rest.len());
    let mut errors = config::ConfigErrors::default();
    for (i, path) in rest.iter().enumerate() {
        let prev = before.and_then(|o| o.get(i)).map(|t| &**t);
        match load_table_with(path, params, prev) {
            Ok(mut t) => {
                t.settings = table.settings.clone();
                others.push(Arc::new(t));
            }
            // Errors name their file relative to its own --conf: say which one.
            Err(e) => errors.0.extend(e.0.into_iter().map(|mut e| {
                e.file = format!("{}: {}", path.display(), e.file);
                e
            })),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut ids = vec![api_id(&table, first)];
    ids.extend(others.iter().zip(rest).map(|(t, p)| api_id(t, p)));
    let mut stages = vec![stage_names(&table)];
    stages.extend(others.iter().map(|t| stage_names(t)));
    let apis = crate::dispatch::Apis::build(first, ids, others, &stages)?;
    if !apis.is_trivial() {
        table.apis = Some(Box::new(apis));
    }
    Ok(table)
}

/// An API's id in domain mappings: `api.json` Name, else the file or directory name.
fn api_id(table: &Table, path: &Path) -> String {
    table.api_name().map(str::to_string).unwrap_or_else(|| {
        path.file_stem()
            .map_or(String::new(), |s| s.to_string_lossy().into_owned())
    })
}

fn stage_names(table: &Table) -> Vec<String> {
    table.stages().map(|s| s.name.to_string()).collect()
}

/// How long one reload may take. Reading files cannot block, but resolving hostnames
/// can take long; past this the reload counts as failed, and later SIGHUPs are served
/// (the stuck attempt's result, if it ever comes, is dropped).
const RELOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Re-reads the configuration on SIGHUP; an invalid one is reported and the running one
/// keeps serving.
pub struct Reloader {
    /// Every `--conf`, in order.
    pub paths: Vec<PathBuf>,
    pub table: SharedTable,
    /// A template's parameter values from the command line, kept for every reload.
    pub params: Params,
}

impl Reloader {
    pub async fn reload(&self) -> bool {
        let paths = self.paths.clone();
        let params = self.params.clone();
        let previous = self.table.load_full();
        // Compiling resolves hostnames and reads files: keep it off the async workers.
        let load =
            tokio::task::spawn_blocking(move || load_gateway(&paths, &params, Some(&previous)));
        let errors = match tokio::time::timeout(RELOAD_TIMEOUT, load).await {
            Ok(Ok(Ok(table))) => {
                let old = self.table.load();
                if old.settings.listen != table.settings.listen
                    || old.settings.threads != table.settings.threads
                {
                    log::warn!("Listen and Threads changes take effect at the next restart");
                }
                // New remote key sets are fetched before the table goes live, so its first
                // requests do not wait for the identity provider.
                prefetch_keys(&table).await;
                crate::tls::listener::reload(table.settings.tls.as_ref());
                self.table.store(Arc::new(table));
                log::info!("configuration reloaded from {:?}", self.paths);
                crate::metrics::metrics().reload(true);
                return true;
            }
            Ok(Ok(Err(errors))) => errors.to_string(),
            Ok(Err(e)) => format!("loading failed: {e}"),
            Err(_) => format!("loading took longer than {RELOAD_TIMEOUT:?}"),
        };
        log::error!("reload rejected, the running configuration keeps serving:\n{errors}");
        crate::metrics::metrics().reload(false);
        false
    }
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        prefetch_keys(&self.table.load_full()).await;
        loop {
            tokio::select! {
                _ = RELOAD_REQUESTED.notified() => { self.reload().await; }
                _ = shutdown.changed() => break,
            }
        }
    }
}

/// Fetches remote JWK sets so the first requests do not wait for them.
async fn prefetch_keys(table: &Table) {
    let others = table.apis.as_ref().map_or(&[][..], |a| a.others());
    for t in std::iter::once(table).chain(others.iter().map(|t| &**t)) {
        for (_, auth) in t.authorizers.values() {
            auth.prefetch().await;
        }
    }
}

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

/// How long one reload may take. Reading files cannot block, but resolving hostnames
/// can take long; past this the reload counts as failed, and later SIGHUPs are served
/// (the stuck attempt's result, if it ever comes, is dropped).
const RELOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Re-reads the configuration on SIGHUP; an invalid one is reported and the running one
/// keeps serving.
pub struct Reloader {
    pub path: PathBuf,
    pub table: SharedTable,
    /// A template's parameter values from the command line, kept for every reload.
    pub params: Params,
}

impl Reloader {
    pub async fn reload(&self) -> bool {
        let path = self.path.clone();
        let params = self.params.clone();
        let previous = self.table.load_full();
        // Compiling resolves hostnames and reads files: keep it off the async workers.
        let load =
            tokio::task::spawn_blocking(move || load_table_with(&path, &params, Some(&previous)));
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
                log::info!("configuration reloaded from {}", self.path.display());
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
    for (_, auth) in table.authorizers.values() {
        auth.prefetch().await;
    }
}

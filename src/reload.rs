//! Loading a configuration, publishing it atomically, and SIGHUP reloads.

use crate::config;
use crate::load::Inputs;
use crate::table::Table;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
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

/// Loads every `--conf` as one table (`crate::load`), logging what is read but not
/// served: at start-up and on each reload.
pub fn load_gateway(
    inputs: &Inputs,
    previous: Option<&Table>,
) -> Result<Table, config::ConfigErrors> {
    let mut notes = crate::load::Notes::default();
    let loaded = crate::load::load(inputs, previous, true, &mut notes)?;
    for w in &notes.warnings {
        log::warn!("{w}");
    }
    Ok(loaded.table)
}

/// How long one reload may take. Reading files cannot block, but resolving hostnames
/// can take long; past this the reload counts as failed, and later SIGHUPs are served
/// (the stuck attempt's result, if it ever comes, is dropped).
const RELOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Re-reads the configuration on SIGHUP; an invalid one is reported and the running one
/// keeps serving.
pub struct Reloader {
    /// Every `--conf`, the parameters and `--lambda-endpoint`.
    pub inputs: Inputs,
    pub table: SharedTable,
}

impl Reloader {
    pub async fn reload(&self) -> bool {
        let inputs = self.inputs.clone();
        let previous = self.table.load_full();
        // Compiling resolves hostnames and reads files: keep it off the async workers.
        let load = tokio::task::spawn_blocking(move || load_gateway(&inputs, Some(&previous)));
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
                let domains = table.apis.as_ref().map_or(&[][..], |a| a.certificates());
                crate::tls::listener::set_domain_certificates(domains);
                self.table.store(Arc::new(table));
                log::info!("configuration reloaded from {:?}", self.inputs.paths);
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

//! The process's life around requests: the in-flight count that SIGTERM waits on, the
//! signals that drain, and the exit once drained.

use crate::metrics::metrics;
use async_trait::async_trait;
use pingora_core::server::{ExecutionPhase, ShutdownSignal, ShutdownSignalWatch};
use std::time::Duration;

/// One request being processed: counted in `apigate_requests_in_flight` from
/// `request_filter` until it is dropped (after `logging`). The gauge is the only count:
/// the drain reads it too.
pub struct InFlight(());

impl InFlight {
    pub fn start() -> InFlight {
        metrics().in_flight.inc();
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics().in_flight.dec();
    }
}

/// Requests in flight now.
pub fn in_flight() -> i64 {
    metrics().in_flight.get()
}

/// SIGTERM and SIGINT both drain (the contract); SIGQUIT keeps Pingora's graceful upgrade.
pub struct DrainOnSignal;

#[async_trait]
impl ShutdownSignalWatch for DrainOnSignal {
    async fn recv(&self) -> ShutdownSignal {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int), Ok(mut quit)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::quit()),
        ) else {
            log::error!("cannot install signal handlers");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => ShutdownSignal::GracefulTerminate,
            _ = int.recv() => ShutdownSignal::GracefulTerminate,
            _ = quit.recv() => ShutdownSignal::GracefulUpgrade,
        }
    }
}

/// Pingora waits a fixed grace period after SIGTERM; this ends the process as soon as the
/// last in-flight request has finished instead (listeners are already closed by then).
pub fn exit_when_drained(
    mut phases: tokio::sync::broadcast::Receiver<ExecutionPhase>,
    on_exit: impl Fn() + Send + 'static,
) {
    std::thread::spawn(move || loop {
        match phases.blocking_recv() {
            Ok(ExecutionPhase::GracefulTerminate) | Ok(ExecutionPhase::ShutdownGracePeriod) => {
                while in_flight() > 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
                on_exit();
                log::info!("drained, exiting");
                std::process::exit(0);
            }
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(_) => return,
        }
    });
}

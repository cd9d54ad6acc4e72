//! Graceful shutdown on SIGTERM (Kubernetes, Compose) or SIGINT (Ctrl-C).

use tokio::sync::watch;

/// Resolves on the first SIGTERM or SIGINT.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            // Without signal handlers, run until killed.
            std::future::pending::<()>().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("received SIGTERM, shutting down"),
            _ = int.recv() => tracing::info!("received SIGINT, shutting down"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A shutdown trigger that many tasks can wait on.
#[derive(Clone, Debug)]
pub struct Shutdown {
    sender: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self {
            sender: watch::channel(false).0,
        }
    }
}

impl Shutdown {
    /// A trigger that fires on the first SIGTERM or SIGINT ([`signal`]), as every service's
    /// `run` wants it. Call from within a Tokio runtime.
    pub fn on_signal() -> Self {
        let shutdown = Self::default();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            signal().await;
            trigger.trigger();
        });
        shutdown
    }

    /// Triggers shutdown.
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    /// Returns `true` once triggered.
    pub fn is_triggered(&self) -> bool {
        *self.sender.borrow()
    }

    /// Resolves once shutdown is triggered.
    pub async fn wait(&self) {
        let mut rx = self.sender.subscribe();
        let _ = rx.wait_for(|t| *t).await;
    }
}

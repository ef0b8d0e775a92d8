//! The one way restage hears that it should stop: SIGINT (Ctrl-C) or SIGTERM (systemd,
//! Kubernetes), whichever comes first.
//!
//! A foundation: it depends on no other restage module, so every long-running command
//! (`health --watch`, `deploy`) waits on the same [`Shutdown`] and names the signal the same
//! way. Both handlers are installed when the [`Shutdown`] is made and stay installed for its
//! life, so a signal that arrives between two waits is kept for the next one, not lost.

/// Listens for SIGINT and SIGTERM from the moment it is made.
pub struct Shutdown {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Shutdown {
    /// Installs the handlers. Fails only when the operating system refuses them.
    pub fn new() -> std::io::Result<Shutdown> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Shutdown {
                int: signal(SignalKind::interrupt())?,
                term: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Shutdown {})
        }
    }

    /// Resolves on the next signal, with its name (`SIGINT`, `SIGTERM`).
    pub async fn wait(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.int.recv() => "SIGINT",
                _ = self.term.recv() => "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}

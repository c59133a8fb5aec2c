//! The Tollgate server: builds every service from the configuration and serves the portal, its server
//! functions and the sign-in routes on one listener. `main.rs` is only the process around `start`.
#![recursion_limit = "256"]

pub mod api;
mod client;
pub mod config;
mod health;
mod middleware;
mod oidc_routes;
mod playground;
mod router;
mod routing;
pub mod state;
pub mod telemetry;

use anyhow::Context;
use std::net::SocketAddr;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

pub use config::{Cli, Config};
pub use state::AppState;

/// A server running in this process: its address, its state, and the handle to stop it.
pub struct RunningServer {
    pub addr: SocketAddr,
    /// The gateway's own listener, when configured (`gateway_listen`); the portal's listener serves `/v1` too.
    pub gateway_addr: Option<SocketAddr>,
    /// The metrics listener, when configured (`metrics_listen`).
    pub metrics_addr: Option<SocketAddr>,
    pub state: AppState,
    stop: Option<watch::Sender<bool>>,
    tasks: Vec<JoinHandle<Result<(), std::io::Error>>>,
}

impl RunningServer {
    /// Stops accepting, finishes in-flight requests, and waits for the server to end.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        self.wait().await
    }

    /// Runs until SIGTERM / Ctrl-C has stopped the server (the signal is watched by the server task).
    pub async fn shutdown_on_signal(mut self) -> anyhow::Result<()> {
        let _keep_open = self.stop.take();
        self.wait().await
    }

    /// Waits for every listener to finish its in-flight requests, then writes the usage records still in memory.
    async fn wait(&mut self) -> anyhow::Result<()> {
        for task in &mut self.tasks {
            task.await.context("server task panicked")??;
        }
        self.state.gateway.flush_usage().await;
        if let Some(c) = &self.state.controller {
            c.release().await;
        }
        Ok(())
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Builds the state (database, migrations, first-start bootstrap) and serves on `listener` until
/// `shutdown()` or, with `serve_until_signal`, SIGTERM / Ctrl-C.
pub async fn start(config: Config, listener: TcpListener) -> anyhow::Result<RunningServer> {
    let addr = listener.local_addr()?;
    let mut config = config;
    if config.listen.port() == 0 {
        // Tests bind port 0: make links and redirects point at the real port.
        if config.public_url == format!("http://{}", config.listen) {
            config.public_url = format!("http://{addr}");
        }
        config.listen = addr;
    }
    let state = AppState::build(&config).await?;
    let app = router::build(state.clone(), &config)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = vec![serve(listener, app, stop_rx.clone())];
    let gateway_addr = match config.gateway_listen {
        None => None,
        Some(at) => {
            let mut stop = stop_rx.clone();
            let (gateway_addr, task) = tollgate_gateway::listener::serve_per_core(
                at,
                config.gateway_workers,
                router::gateway_only(&state, &config),
                async move {
                    tokio::select! {
                        _ = stop.wait_for(|stopped| *stopped) => {}
                        _ = shutdown_signal() => {}
                    }
                },
            )
            .await
            .with_context(|| format!("cannot listen for the gateway on {at}"))?;
            tasks.push(task);
            Some(gateway_addr)
        }
    };
    let metrics_addr = match config.metrics_listen {
        None => None,
        Some(at) => {
            let listener = TcpListener::bind(at)
                .await
                .with_context(|| format!("cannot listen for metrics on {at}"))?;
            let metrics_addr = listener.local_addr()?;
            tasks.push(serve(
                listener,
                router::metrics_only(&state),
                stop_rx.clone(),
            ));
            Some(metrics_addr)
        }
    };
    Ok(RunningServer {
        addr,
        gateway_addr,
        metrics_addr,
        state,
        stop: Some(stop_tx),
        tasks,
    })
}

/// Serves `app` on `listener` until `stop` turns true or the process is asked to stop.
fn serve(
    listener: TcpListener,
    app: axum::Router,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<Result<(), std::io::Error>> {
    // Streams must not wait for Nagle's algorithm: each chunk goes out as it is written.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = stop.wait_for(|stopped| *stopped) => {}
                _ = shutdown_signal() => {}
            }
        })
        .await
    })
}

/// Waits for SIGTERM (how orchestrators stop us) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutdown requested: finishing in-flight requests");
}

//! The gateway's own listener: one single-threaded Tokio runtime per core, each accepting on its own socket bound
//! to the same address (`SO_REUSEPORT`, so the kernel spreads connections over them), as Envoy, nginx and
//! Pingora serve. A request then lives on one thread from its first byte to its last: the client's socket, the
//! engine's socket and the task that drives both share one reactor, and no worker wakes another to steal work.
//! On a work-stealing runtime each network event could wake a second worker, which found nothing to do: two
//! futex calls and a context switch per event, on the cores the engines and clients need.
//!
//! Background work (probes, the usage writer, Redis settlements) stays on the runtime that built the gateway.

use axum::Router;
use std::cell::Cell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use tokio::net::TcpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Connections waiting to be accepted, per listening socket.
const BACKLOG: u32 = 1024;

thread_local! {
    /// Which per-core runtime this thread runs (1-based); 0 on any other thread.
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// The per-core runtime of the current thread (1-based), or 0 on a thread this module did not start. Sockets are
/// registered with the reactor of the runtime that opened them, so pooled engine connections are kept per worker.
pub fn current_worker() -> usize {
    WORKER.with(Cell::get)
}

/// How many per-core runtimes to start when none is configured: one per core the process may use.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Serves `app` on `addr` with `workers` single-threaded runtimes until `shutdown` completes, then lets each
/// finish the requests it has in flight. Returns once every worker listens, with the address bound (its port is
/// chosen when `addr`'s is 0) and a task, on the calling runtime, that ends once every worker has stopped.
pub async fn serve_per_core(
    addr: SocketAddr,
    workers: usize,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<(SocketAddr, JoinHandle<io::Result<()>>)> {
    let workers = workers.max(1);
    if addr.port() != 0 {
        // With SO_REUSEPORT any socket of this user may join the port, and the kernel would share its connections
        // with another process already on it: bind once without it first, so that is "address in use" instead.
        drop(std::net::TcpListener::bind(addr)?);
    }
    let first = reusable_socket(addr)?;
    let bound = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..workers {
        sockets.push(reusable_socket(bound)?);
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut threads = Vec::with_capacity(workers);
    for (i, socket) in sockets.into_iter().enumerate() {
        let (app, mut stop) = (app.clone(), stop_rx.clone());
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(format!("gateway-{}", i + 1))
            .spawn(move || {
                WORKER.with(|w| w.set(i + 1));
                let served = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .and_then(|rt| {
                        rt.block_on(async move {
                            let listening = socket.listen(BACKLOG);
                            let failed = listening
                                .as_ref()
                                .err()
                                .map(|e| io::Error::new(e.kind(), e.to_string()));
                            let _ = ready_tx.send(failed);
                            let listener = axum::serve::ListenerExt::tap_io(listening?, |tcp| {
                                // Each chunk of a stream goes out as it is written.
                                let _ = tcp.set_nodelay(true);
                            });
                            axum::serve(listener, app)
                                .with_graceful_shutdown(async move {
                                    let _ = stop.wait_for(|stopped| *stopped).await;
                                })
                                .await
                        })
                    });
                let _ = done_tx.send(served);
            })?;
        let failed = match ready_rx.await {
            Ok(None) => {
                threads.push(done_rx);
                continue;
            }
            Ok(Some(e)) => e,
            // The thread ended before it listened (its runtime could not be built): its result says why.
            Err(_) => match done_rx.await {
                Ok(Err(e)) => e,
                _ => io::Error::other("a gateway worker did not start"),
            },
        };
        // The workers already listening stop too.
        let _ = stop_tx.send(true);
        return Err(failed);
    }
    let task = tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
        let mut result = Ok(());
        for done in threads {
            match done.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(_) => result = Err(io::Error::other("a gateway worker thread panicked")),
            }
        }
        result
    });
    Ok((bound, task))
}

/// A TCP socket bound to `addr` that other sockets may bind too, not yet listening (it is registered with the
/// runtime that calls `listen`).
fn reusable_socket(addr: SocketAddr) -> io::Result<TcpSocket> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;

    #[tokio::test]
    async fn every_worker_serves_and_all_stop_on_shutdown() {
        let app = Router::new().route("/worker", get(|| async { current_worker().to_string() }));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (addr, task) = serve_per_core(([127, 0, 0, 1], 0).into(), 2, app, async {
            let _ = stop_rx.await;
        })
        .await
        .unwrap();
        assert_ne!(addr.port(), 0);
        // New connections are spread over both sockets by the kernel: within a few dozen, each worker answers.
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..64 {
            let client = reqwest::Client::builder().no_proxy().build().unwrap();
            let body = client
                .get(format!("http://{addr}/worker"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            seen.insert(body);
            if seen.len() == 2 {
                break;
            }
        }
        assert_eq!(seen, ["1".to_string(), "2".to_string()].into());
        assert_eq!(current_worker(), 0, "the test's own thread is no worker");
        stop_tx.send(()).unwrap();
        task.await.unwrap().unwrap();
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "nothing listens after shutdown"
        );
    }

    #[tokio::test]
    async fn a_port_in_use_is_refused_not_shared() {
        // Another gateway already serves the port, with SO_REUSEPORT as this one would.
        let other = reusable_socket(([127, 0, 0, 1], 0).into()).unwrap();
        let addr = other.local_addr().unwrap();
        let _taken = other.listen(16).unwrap();
        let refused = serve_per_core(addr, 2, Router::new(), std::future::pending()).await;
        assert_eq!(
            refused.err().map(|e| e.kind()),
            Some(io::ErrorKind::AddrInUse)
        );
    }
}

//! What the gateway adds: the same load sent straight to the engine simulator (zero simulated latency) and through
//! the gateway, in one run on one machine. Prints latency percentiles at concurrency 1 (the added latency) and
//! throughput at a fixed concurrency, for small non-streaming requests and for streams.
//!
//! `cargo bench -p tollgate-gateway --bench overhead` (`BENCH_SECS`, `BENCH_CONCURRENCY`, `BENCH_SAMPLES`).
//! Client, gateway and engine share the machine's cores, so the figures are an upper bound on the overhead.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

mod common;
use common::env;
use tollgate_domain::grant::Limits;
use tollgate_gateway::{Gateway, GatewayConfig};

const MODEL: &str = "bench-model";

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// The proxies under test and what they hold.
struct Proxies {
    gw: Gateway,
    db: tollgate_store::testing::TestDatabase,
    auth: String,
    gateway: SocketAddr,
    shared: SocketAddr,
    relay: SocketAddr,
    bare: SocketAddr,
}

fn main() {
    // Each part runs on a runtime of its own, as each is a process of its own in production: the engine with two
    // workers (as `tollgate-sim`, and as vLLM's server is a process apart), the proxies under test with two (as
    // `tollgate` on this machine), and the load generator on one thread. Sharing one runtime instead made tasks of
    // the client, the gateway and the engine wake each other across its two workers, and the figures swung by 2x
    // from run to run with where the tasks happened to land.
    let runtime = |name: &str, workers: usize| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name(name)
            .enable_all()
            .build()
            .expect("runtime")
    };
    let engine_rt = runtime("engine", 2);
    let proxy_rt = runtime("proxy", 2);
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let engine = engine_rt.block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let a = l.local_addr().expect("addr");
        tokio::spawn(tollgate_sim::serve(
            tollgate_sim::SimConfig::new(MODEL).zero_latency(),
            l,
        ));
        a
    });
    let proxies = proxy_rt.block_on(start_proxies(engine));
    client_rt.block_on(measure(engine, &proxies));
    proxy_rt.block_on(async {
        proxies.gw.flush_usage().await;
        let _ = proxies.db.cleanup().await;
    });
}

async fn start_proxies(engine: SocketAddr) -> Proxies {
    // Limits on, so their cost is measured, but far above what the bench sends.
    let limits = Limits {
        requests_per_minute: Some(u32::MAX),
        tokens_per_minute: Some(u32::MAX),
        max_concurrent: Some(100_000),
        monthly_tokens: Some(u64::MAX / 2),
    };
    let common::Bench { gw, auth, db } = common::gateway(
        MODEL,
        vec![format!("http://{engine}")],
        limits,
        GatewayConfig::default(),
    )
    .await;
    // As `TOLLGATE_GATEWAY_LISTEN` serves it: a single-threaded runtime per core.
    let gateway = per_core(tollgate_gateway::router(gw.clone())).await;
    // As the portal's listener serves `/v1`: the work-stealing runtime the rest of the server runs on.
    let shared = work_stealing(tollgate_gateway::router(gw.clone())).await;

    // The floor any proxy pays here: a relay that copies bytes both ways without reading them.
    let relay = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let a = l.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = l.accept().await {
                tokio::spawn(async move {
                    let _ = inbound.set_nodelay(true);
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(engine).await {
                        let _ = outbound.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        a
    };

    // What HTTP proxying alone costs here: the same hyper server and engine connections as the gateway, and
    // nothing else (no key, limits, body parsing, scanning or metering).
    let bare = {
        let pool = Arc::new(tollgate_gateway::engine_conn::EnginePool::default());
        let address =
            tollgate_gateway::engine_conn::EngineAddress::parse(&format!("http://{engine}"))
                .expect("engine address");
        let head = Arc::new(
            address
                .head("POST", "/v1/chat/completions", Some("application/json"))
                .expect("head"),
        );
        let tls = tollgate_gateway::engine_conn::EngineTls::default();
        let forward = move |body: Bytes| {
            let (pool, address, head, tls) =
                (pool.clone(), address.clone(), head.clone(), tls.clone());
            async move {
                let request = tollgate_gateway::engine_conn::EngineRequest {
                    head: &head,
                    request_id: None,
                    body: Some(&body),
                };
                let options = tollgate_gateway::engine_conn::ConnectOptions {
                    connect_timeout: Duration::from_secs(4),
                    idle_timeout: Duration::from_secs(4),
                    tls: &tls,
                };
                let response = pool
                    .send(&address, request, &options)
                    .await
                    .expect("engine");
                // Like the gateway: a whole answer is read whole and sent in one write, a stream is forwarded.
                let streamed = memchr::memmem::find(&body, b"\"stream\":true").is_some();
                let body = if streamed {
                    axum::body::Body::new(response.body)
                } else {
                    axum::body::Body::from(response.body.collect().await.expect("body").to_bytes())
                };
                let mut answer = http::Response::new(body);
                *answer.status_mut() = response.status;
                if let Some(ct) = response.content_type {
                    answer.headers_mut().insert(http::header::CONTENT_TYPE, ct);
                }
                answer
            }
        };
        per_core(axum::Router::new().route("/v1/chat/completions", axum::routing::post(forward)))
            .await
    };

    Proxies {
        gw,
        db,
        auth,
        gateway,
        shared,
        relay,
        bare,
    }
}

/// Serves `app` on a loopback port the way the gateway's own listener does.
async fn per_core(app: axum::Router) -> SocketAddr {
    let workers = tollgate_gateway::listener::default_workers();
    let (addr, _task) = tollgate_gateway::listener::serve_per_core(
        ([127, 0, 0, 1], 0).into(),
        workers,
        app,
        std::future::pending(),
    )
    .await
    .expect("listen");
    addr
}

/// Serves `app` on a loopback port the way the portal's listener does (on the calling runtime).
async fn work_stealing(app: axum::Router) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let a = l.local_addr().expect("addr");
    tokio::spawn(async move {
        use axum::serve::ListenerExt;
        let l = l.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let _ = axum::serve(l, app).await;
    });
    a
}

async fn measure(engine: SocketAddr, proxies: &Proxies) {
    let secs = env("BENCH_SECS", 3);
    let concurrency = env("BENCH_CONCURRENCY", 32) as usize;
    let samples = env("BENCH_SAMPLES", 3000) as usize;
    let Proxies {
        auth,
        gateway,
        shared,
        relay,
        bare,
        ..
    } = proxies;
    let (gateway, shared, relay, bare) = (*gateway, *shared, *relay, *bare);
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new()).build(connector);

    println!("tollgate-gateway overhead benchmark (client, proxies and engine on threads of their own, sharing this machine's cores)");
    println!("gateway: its own listener, a single-threaded runtime per core; shared: the portal's work-stealing runtime");
    println!("engine: tollgate-sim, zero latency, 16 output tokens per request");
    // Throughput and latencies first where the scheduler places threads; then latencies with every thread on one
    // core (once pinned, threads stay together for a while even when let go, so that comes last).
    for (cores, stream) in [
        (Cores::All, false),
        (Cores::All, true),
        (Cores::One, false),
        (Cores::One, true),
    ] {
        cores.pin();
        let kind = if stream { "streaming" } else { "non-streaming" };
        let body = Bytes::from(
            serde_json::json!({
                "model": MODEL, "messages": [{"role": "user", "content": "Say something short."}],
                "max_tokens": 16, "ignore_eos": true, "stream": stream,
            })
            .to_string(),
        );
        // Warm both paths (connections, pools).
        let targets = [
            (engine, None),
            (gateway, Some(auth.as_str())),
            (shared, Some(auth.as_str())),
            (relay, None),
            (bare, None),
        ];
        latencies(&client, &targets, &body, 200).await;
        if let Ok(only) = std::env::var("BENCH_ONLY") {
            // For a profiler or strace: one path alone, e.g. BENCH_ONLY=gateway.
            let names = ["direct", "gateway", "shared", "relay", "bare"];
            let i = names
                .iter()
                .position(|n| *n == only)
                .expect("BENCH_ONLY: direct, gateway, shared, relay or bare");
            let [alone] = latencies(&client, &[targets[i]], &body, samples).await;
            println!(
                "{kind}: {only} alone, p50 {:.1} µs over {samples} requests",
                pct(&alone, 50.0)
            );
            continue;
        }
        let series = latencies(&client, &targets, &body, samples).await;
        report_latencies(kind, cores, samples, &series);
        if cores == Cores::One {
            continue;
        }
        let d = throughput(&client, engine, None, &body, concurrency, secs).await;
        let g = throughput(
            &client,
            gateway,
            Some(auth.as_str()),
            &body,
            concurrency,
            secs,
        )
        .await;
        let sh = throughput(
            &client,
            shared,
            Some(auth.as_str()),
            &body,
            concurrency,
            secs,
        )
        .await;
        println!("{kind}, concurrency {concurrency}, {secs} s each:");
        println!("  direct   {:>8.0} requests/s", d);
        for (what, n) in [("gateway ", g), ("shared  ", sh)] {
            println!(
                "  {what} {:>8.0} requests/s ({:.0}% of direct)",
                n,
                100.0 * n / d
            );
        }
    }
}

/// Where the benchmark's threads may run while latencies are measured.
#[derive(Clone, Copy, PartialEq)]
enum Cores {
    /// Every thread on the first core: each hop between client, proxy and engine is a context switch there. The
    /// figures hold still from run to run, so they show what the gateway's own work costs.
    One,
    /// Wherever the scheduler puts them: a hop may instead wake a thread on the other core, which on this VM costs
    /// anywhere from nothing to tens of µs with what the host is doing, and the figures move with it.
    All,
}

impl Cores {
    /// Sets the CPU affinity of every thread of this process (threads started later inherit it), with util-linux's
    /// `taskset` (the workspace forbids the unsafe code a direct `sched_setaffinity` call takes).
    fn pin(self) {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let list = match self {
            Cores::One => "0".to_string(),
            Cores::All => format!("0-{}", cores - 1),
        };
        let pid = std::process::id().to_string();
        let set = std::process::Command::new("taskset")
            .args(["--all-tasks", "--pid", "--cpu-list", &list, &pid])
            .stdout(std::process::Stdio::null())
            .status();
        assert!(
            set.is_ok_and(|s| s.success()),
            "taskset (util-linux) could not pin the benchmark's threads"
        );
    }

    fn label(self) -> &'static str {
        match self {
            Cores::One => "all on one core",
            Cores::All => "on any core",
        }
    }
}

/// Prints one latency table: each path's p50 and p99, and what each proxy adds to the direct path.
fn report_latencies(kind: &str, cores: Cores, samples: usize, series: &[Vec<f64>; 5]) {
    let [direct, via, via_shared, relayed, bared] = series;
    let p = |s: &[f64]| (pct(s, 50.0), pct(s, 99.0));
    let ((d50, d99), (g50, g99)) = (p(direct), p(via));
    println!(
        "\n{kind}, concurrency 1, threads {}, {samples} requests each, in alternating blocks:",
        cores.label()
    );
    println!("  direct   p50 {:>7.1} µs  p99 {:>7.1} µs", d50, d99);
    println!("  gateway  p50 {:>7.1} µs  p99 {:>7.1} µs", g50, g99);
    println!(
        "  added    p50 {:>7.1} µs  p99 {:>7.1} µs",
        g50 - d50,
        g99 - d99
    );
    for (what, series) in [
        (
            "the gateway on the portal's listener (work-stealing runtime)",
            via_shared,
        ),
        ("a TCP relay, copying bytes only,", relayed),
        (
            "a bare HTTP proxy (same server and engine connections, nothing else)",
            bared,
        ),
    ] {
        let (x50, x99) = p(series);
        println!(
            "  ({what} adds p50 {:>5.1} µs  p99 {:>5.1} µs)",
            x50 - d50,
            x99 - d99
        );
    }
}

async fn one(client: &HttpClient, addr: SocketAddr, auth: Option<&str>, body: &Bytes) {
    let mut req = http::Request::post(format!("http://{addr}/v1/chat/completions"))
        .header("content-type", "application/json");
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let req = req.body(Full::new(body.clone())).expect("request");
    let resp = client.request(req).await.expect("send");
    assert!(resp.status().is_success(), "status {}", resp.status());
    resp.into_body().collect().await.expect("body");
}

/// Microseconds per request, one at a time, for each target in turn: `BLOCK` requests to the first, then to the
/// next, and round again until each has had `n`. Blocks keep each path in its steady state (its code and data warm
/// in the caches, as in a server that does nothing else), and the rounds spread every path over the whole run, so
/// whatever else the machine does at a moment weighs on all of them alike.
async fn latencies<const N: usize>(
    client: &HttpClient,
    targets: &[(SocketAddr, Option<&str>); N],
    body: &Bytes,
    n: usize,
) -> [Vec<f64>; N] {
    const BLOCK: usize = 100;
    let mut out: [Vec<f64>; N] = std::array::from_fn(|_| Vec::with_capacity(n));
    while out[0].len() < n {
        let block = BLOCK.min(n - out[0].len());
        for (series, (addr, auth)) in out.iter_mut().zip(targets) {
            for _ in 0..block {
                let t = Instant::now();
                one(client, *addr, *auth, body).await;
                series.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
    }
    for series in &mut out {
        series.sort_by(|a, b| a.total_cmp(b));
    }
    out
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Requests per second with `concurrency` clients in a loop for `secs`.
async fn throughput(
    client: &HttpClient,
    addr: SocketAddr,
    auth: Option<&str>,
    body: &Bytes,
    concurrency: usize,
    secs: u64,
) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, body, stop, done) =
                (client.clone(), body.clone(), stop.clone(), done.clone());
            let auth = auth.map(str::to_owned);
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    one(&client, addr, auth.as_deref(), &body).await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

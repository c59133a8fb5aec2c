//! `tollgate-sim`: parse a `vllm serve`-shaped command line, bind, print the listening
//! line, serve until SIGINT/SIGTERM.

use std::io::Write as _;
use std::process::ExitCode;

use tokio::net::TcpListener;
use tollgate_sim::cli::Cli;

fn main() -> ExitCode {
    let cli = match Cli::parse_vllm_style(std::env::args_os()) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let addr = cli.bind_addr();
    let config = match cli.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tollgate-sim: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tollgate-sim: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match TcpListener::bind(&addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("tollgate-sim: cannot bind {addr}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let local = listener.local_addr().map(|a| a.to_string()).unwrap_or(addr);
        eprintln!(
            "tollgate-sim: serving {:?} as {:?} (max_model_len={}, max_num_seqs={}, load_time={:?})",
            config.model,
            config.served_model_names,
            config.max_model_len,
            config.max_num_seqs,
            config.load_time
        );
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "tollgate-sim listening on http://{local}");
        let _ = stdout.flush();
        tokio::select! {
            r = tollgate_sim::serve(config, listener) => match r {
                Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
                Err(e) => {
                    eprintln!("tollgate-sim: server error: {e}");
                    ExitCode::FAILURE
                }
            },
            _ = shutdown_signal() => ExitCode::SUCCESS,
        }
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

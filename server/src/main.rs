//! `tollgate`: the server binary. Reads the configuration, starts the server, stops on SIGTERM / Ctrl-C.

use clap::Parser;
use tollgate_server::{start, telemetry, Cli, Config};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if cli.print_openapi {
        println!("{:#}", tollgate_server::api::openapi::document());
        return std::process::ExitCode::SUCCESS;
    }
    let config = match Config::load(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tollgate: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    telemetry::init(&config.log_format);
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, listen = %config.listen, "cannot listen");
            return std::process::ExitCode::from(1);
        }
    };
    match start(config, listener).await {
        Ok(server) => {
            tracing::info!(url = %server.url(), "Tollgate is serving");
            match server.shutdown_on_signal().await {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "server stopped with an error");
                    std::process::ExitCode::from(1)
                }
            }
        }
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "Tollgate could not start");
            std::process::ExitCode::from(1)
        }
    }
}

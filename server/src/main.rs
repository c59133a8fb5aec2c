//! `tollgate`: the server binary. Reads the configuration, starts the server, stops on SIGTERM / Ctrl-C.

use tollgate_server::config::{Command, ConfigAction, ConfigError, UsageAction};
use tollgate_server::{start, telemetry, Config};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let loaded = match Config::load() {
        Ok(l) => l,
        // --help and --version end here too, printed by clap with their own exit code.
        Err(ConfigError::Cli(e)) => e.exit(),
        Err(e) => {
            eprintln!("tollgate: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if loaded.cli.print_openapi {
        println!("{:#}", tollgate_server::api::openapi::document());
        return std::process::ExitCode::SUCCESS;
    }
    match loaded.cli.command {
        Some(Command::Config {
            action: ConfigAction::Show,
        }) => {
            print!("{}", loaded.show());
            return std::process::ExitCode::SUCCESS;
        }
        Some(Command::Config {
            action: ConfigAction::Table,
        }) => {
            print!("{}", tollgate_server::config::settings_table());
            return std::process::ExitCode::SUCCESS;
        }
        Some(Command::Usage {
            action:
                UsageAction::Generate {
                    records,
                    tenants,
                    days,
                    per_second,
                    batch,
                    seed,
                },
        }) => {
            let spec = tollgate_usage::generate::Spec {
                records,
                tenants,
                days,
                per_second,
                batch,
                seed,
                now: tollgate_store::now_millis(),
            };
            return generate_usage(&loaded.config.database_url, &spec).await;
        }
        None => {}
    }
    let config = loaded.config;
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

/// `tollgate usage generate`: made-up usage into the configured database, with the ingest rate.
async fn generate_usage(
    url: &str,
    spec: &tollgate_usage::generate::Spec,
) -> std::process::ExitCode {
    let store = match tollgate_store::Store::connect(url).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tollgate: cannot open the database: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let every = (spec.records / 20).max(1);
    let mut shown = 0;
    let done = tollgate_usage::generate::generate(&store, spec, |n| {
        if n / every > shown {
            shown = n / every;
            eprintln!("  {n} records");
        }
    })
    .await;
    match done {
        Ok(g) => {
            println!(
                "inserted {} records ({} tenants, {} days) in {:.1} s: {:.0} records/s, rollups included",
                g.inserted,
                spec.tenants,
                spec.days,
                g.elapsed.as_secs_f64(),
                g.per_second()
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tollgate: generating usage failed: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

//! The simulator driver, the embedded default: simulated nodes and GPUs from configuration, each replica an engine
//! simulator (`tollgate-sim`, as a library) serving on a loopback port inside this process. The `tollgate` binary
//! alone is then a whole platform. The simulator's start-up delay and faults (`POST /sim/faults`, or
//! `--sim-fault-*` arguments) exercise cold starts, crashes and restarts.
//!
//! Replicas live in this process, so they end with it: a controller that takes over after this process died
//! finds their handles unknown and starts them again.

use super::{Driver, DriverError, ReplicaSpec, Started};
use crate::rules::lifecycle::Process;
use crate::rules::placement::{Gpu, Node};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::task::JoinHandle;

struct Engine {
    state: tollgate_sim::SharedState,
    task: JoinHandle<std::io::Result<i32>>,
}

pub struct SimDriver {
    nodes: Vec<Node>,
    /// Simulator arguments added to every replica's (`--sim-load-time-s 2`, say).
    sim_args: Vec<String>,
    engines: Mutex<HashMap<String, Engine>>,
}

impl SimDriver {
    /// `nodes` as `COUNTxGPUSxPRODUCT` groups, comma-separated: `2x8xH100-80GB,1x4xA100-40GB`.
    pub fn new(nodes: &str, sim_args: Vec<String>) -> Result<Self, String> {
        Ok(Self {
            nodes: parse_nodes(nodes)?,
            sim_args,
            engines: Mutex::default(),
        })
    }

    fn engines(&self) -> std::sync::MutexGuard<'_, HashMap<String, Engine>> {
        self.engines.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn command_line(&self, served_name: &str, args: &[String]) -> Vec<String> {
        let mut line: Vec<String> = [
            "tollgate-sim",
            served_name,
            "--served-model-name",
            served_name,
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        line.extend(args.iter().cloned());
        line.extend(self.sim_args.iter().cloned());
        line
    }

    fn config(
        &self,
        served_name: &str,
        args: &[String],
    ) -> Result<tollgate_sim::SimConfig, String> {
        tollgate_sim::cli::Cli::parse_vllm_style(self.command_line(served_name, args))
            .map_err(|e| {
                let text = e.to_string();
                text.lines()
                    .next()
                    .unwrap_or("the engine refused its arguments")
                    .trim_start_matches("error: ")
                    .to_string()
            })?
            .into_config()
    }
}

/// The engine arguments with `--max-model-len` set to the catalog's context length where the deployment left it
/// unset: vLLM would read it from the model's config, which a simulated model does not have.
fn with_context_length(args: &[String], context_length: u32) -> Vec<String> {
    let mut args = args.to_vec();
    let given = args
        .iter()
        .any(|a| a == "--max-model-len" || a.starts_with("--max-model-len="));
    if !given && context_length > 0 {
        args.extend(["--max-model-len".to_string(), context_length.to_string()]);
    }
    args
}

/// Reads `COUNTxGPUSxPRODUCT` groups; a product's memory comes from its name (`H100-80GB`: 80 GiB), else 80 GiB.
pub fn parse_nodes(spec: &str) -> Result<Vec<Node>, String> {
    let mut nodes = Vec::new();
    for group in spec.split(',').map(str::trim).filter(|g| !g.is_empty()) {
        let mut parts = group.splitn(3, 'x');
        let (Some(count), Some(gpus), Some(product)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!(
                "'{group}' is not COUNTxGPUSxPRODUCT (e.g. 2x8xH100-80GB)"
            ));
        };
        let count: u32 = count
            .parse()
            .map_err(|_| format!("'{count}' in '{group}' is not a node count"))?;
        let gpus: u32 = gpus
            .parse()
            .map_err(|_| format!("'{gpus}' in '{group}' is not a GPU count"))?;
        if count == 0 || gpus == 0 || count > 10_000 || gpus > 64 {
            return Err(format!("'{group}': 1 to 10000 nodes of 1 to 64 GPUs"));
        }
        let memory_mib = memory_from_product(product);
        for _ in 0..count {
            let name = format!("sim-node-{}", nodes.len() + 1);
            nodes.push(Node {
                name,
                schedulable: true,
                gpus: (0..gpus)
                    .map(|index| Gpu {
                        index,
                        product: product.to_string(),
                        memory_mib,
                        healthy: true,
                        holder: None,
                    })
                    .collect(),
            });
        }
    }
    if nodes.is_empty() {
        return Err("no simulated nodes configured".into());
    }
    Ok(nodes)
}

fn memory_from_product(product: &str) -> u64 {
    let upper = product.to_ascii_uppercase();
    upper
        .strip_suffix("GB")
        .and_then(|rest| {
            let digits: String = rest
                .chars()
                .rev()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.chars().rev().collect::<String>().parse::<u64>().ok()
        })
        .filter(|gib| *gib > 0)
        .unwrap_or(80)
        * 1024
}

#[async_trait::async_trait]
impl Driver for SimDriver {
    fn kind(&self) -> &'static str {
        "simulator"
    }

    async fn inventory(&self) -> Result<Vec<Node>, DriverError> {
        Ok(self.nodes.clone())
    }

    fn check_args(&self, served_name: &str, args: &[String]) -> Result<(), String> {
        self.config(served_name, args).map(|_| ())
    }

    async fn start(&self, spec: &ReplicaSpec) -> Result<Started, DriverError> {
        let args = with_context_length(&spec.args, spec.context_length);
        let config = self
            .config(&spec.served_name, &args)
            .map_err(DriverError::Permanent)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| DriverError::Transient(format!("cannot bind a loopback port: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| DriverError::Transient(e.to_string()))?
            .port();
        let state = tollgate_sim::start(config);
        let task = tokio::spawn(tollgate_sim::serve_state(state.clone(), listener));
        let handle = format!("sim:{}:{port}", spec.replica_id);
        self.engines()
            .insert(handle.clone(), Engine { state, task });
        Ok(Started {
            handle,
            base_url: format!("http://127.0.0.1:{port}"),
        })
    }

    async fn observe(&self, handle: &str) -> Process {
        match self.engines().get(handle) {
            None => Process::None,
            Some(e) if e.state.exited() => Process::Exited("the engine exited".into()),
            Some(e) if e.task.is_finished() => Process::Exited("the engine's server ended".into()),
            Some(_) => Process::Running,
        }
    }

    async fn stop(&self, handle: &str) -> Result<(), DriverError> {
        if let Some(e) = self.engines().remove(handle) {
            // Cuts streams still running and closes kept-alive connections, then stops accepting.
            e.state.exit(0);
            e.task.abort();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_read_from_groups() {
        let nodes = parse_nodes("2x8xH100-80GB, 1x4xA100-40GB").unwrap();
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[2].name, "sim-node-3");
        assert_eq!(nodes[0].gpus.len(), 8);
        assert_eq!(nodes[0].gpus[0].memory_mib, 80 * 1024);
        assert_eq!(nodes[2].gpus[3].product, "A100-40GB");
        assert_eq!(nodes[2].gpus[3].memory_mib, 40 * 1024);
        assert_eq!(
            parse_nodes("1x1xL4").unwrap()[0].gpus[0].memory_mib,
            80 * 1024
        );
        for bad in ["", "2x8", "ax8xH100", "0x8xH100", "1x65xH100"] {
            assert!(parse_nodes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_catalog_context_length_fills_in_only_an_unset_max_model_len() {
        let tp = ["--tensor-parallel-size".to_string(), "1".to_string()];
        assert_eq!(
            with_context_length(&tp, 8192)[2..],
            ["--max-model-len", "8192"]
        );
        assert_eq!(with_context_length(&tp, 0), tp);
        let set = ["--max-model-len".to_string(), "4096".to_string()];
        assert_eq!(with_context_length(&set, 8192), set);
        let set = ["--max-model-len=4096".to_string()];
        assert_eq!(with_context_length(&set, 8192), set);
    }

    #[tokio::test]
    async fn a_replica_serves_exits_on_a_fault_and_stops() {
        let driver = SimDriver::new("1x2xH100-80GB", vec!["--sim-zero-latency".into()]).unwrap();
        assert!(driver
            .check_args("m", &["--max-num-seqs".into(), "lots".into()])
            .is_err());
        let spec = ReplicaSpec {
            replica_id: "rep_1".into(),
            deployment_id: "dep_1".into(),
            served_name: "org/m".into(),
            node: "sim-node-1".into(),
            gpus: vec![0],
            args: vec!["--tensor-parallel-size".into(), "1".into()],
            gpu_products: Vec::new(),
            min_gpu_memory_mib: 0,
            context_length: 32_768,
        };
        let started = driver.start(&spec).await.unwrap();
        assert_eq!(driver.observe(&started.handle).await, Process::Running);
        let health = reqwest::get(format!("{}/health", started.base_url))
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
        let models: serde_json::Value = reqwest::get(format!("{}/v1/models", started.base_url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(models["data"][0]["id"], "org/m");
        // Serves the catalog's context, not the simulator's own default.
        assert_eq!(models["data"][0]["max_model_len"], 32_768);
        // The exit fault ends this engine, not the process.
        let fault = reqwest::Client::new()
            .post(format!("{}/sim/faults", started.base_url))
            .body(r#"{"exit":true}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(fault.status(), 200);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(matches!(
            driver.observe(&started.handle).await,
            Process::Exited(_)
        ));
        driver.stop(&started.handle).await.unwrap();
        assert_eq!(driver.observe(&started.handle).await, Process::None);
        driver.stop(&started.handle).await.unwrap();
    }
}

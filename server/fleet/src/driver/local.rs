//! The local driver: one engine process per replica on this machine's GPUs (`vllm serve`, or any command that
//! takes vLLM's arguments, such as `tollgate-sim`), with `CUDA_VISIBLE_DEVICES` set to the placed GPUs. GPUs
//! come from `nvidia-smi` (the query is configurable, so a recorded answer can stand in). Each process's output
//! is kept in a bounded buffer the portal shows.
//!
//! Processes are not tied to this one: when Tollgate restarts, the controller finds them by their handle
//! (`local:PID:PORT`) and adopts them instead of starting duplicates.

use super::{Driver, DriverError, ReplicaSpec, Started};
use crate::rules::lifecycle::Process;
use crate::rules::placement::Node;
use std::collections::{HashMap, VecDeque};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalConfig {
    /// The engine command before the model, e.g. `["vllm", "serve"]`.
    pub command: Vec<String>,
    /// The command that lists GPUs in nvidia-smi's CSV (`nvidia_smi::QUERY` by default).
    pub gpu_query: Vec<String>,
    /// The node name shown for this machine.
    pub node: String,
    /// The address engines listen on and the gateway reaches them at.
    pub host: String,
    /// Output lines kept per replica.
    pub log_lines: usize,
}

struct Proc {
    pid: u32,
    log: Arc<Mutex<VecDeque<String>>>,
    exit: Arc<Mutex<Option<String>>>,
}

pub struct LocalDriver {
    config: LocalConfig,
    procs: Mutex<HashMap<String, Proc>>,
}

impl LocalDriver {
    pub fn new(config: LocalConfig) -> Result<Self, String> {
        if config.command.is_empty() {
            return Err("the local driver needs an engine command (e.g. \"vllm serve\")".into());
        }
        Ok(Self {
            config,
            procs: Mutex::default(),
        })
    }

    fn procs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Proc>> {
        self.procs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn parse_handle(handle: &str) -> Option<(u32, u16)> {
    let mut parts = handle.strip_prefix("local:")?.split(':');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Whether `pid` is a live process started with vLLM-style arguments (so a reused pid is never mistaken for one
/// of ours).
fn alive(pid: u32) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .map(|r| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false);
    !zombie
        && cmdline
            .split(|b| *b == 0)
            .any(|arg| arg == b"--served-model-name")
}

async fn signal(pid: u32, sig: &str) {
    let _ = tokio::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

fn keep_lines<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
    reader: R,
    log: Arc<Mutex<VecDeque<String>>>,
    max: usize,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(reader).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
            if log.len() >= max.max(1) {
                log.pop_front();
            }
            log.push_back(line.chars().take(2_000).collect());
        }
    });
}

#[async_trait::async_trait]
impl Driver for LocalDriver {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn inventory(&self) -> Result<Vec<Node>, DriverError> {
        let (program, args) = self
            .config
            .gpu_query
            .split_first()
            .ok_or_else(|| DriverError::Permanent("no GPU query command configured".into()))?;
        let out = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| DriverError::Permanent(format!("cannot run {program}: {e}")))?;
        if !out.status.success() {
            return Err(DriverError::Transient(format!(
                "{program} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(vec![Node {
            name: self.config.node.clone(),
            schedulable: true,
            gpus: super::nvidia_smi::parse(&String::from_utf8_lossy(&out.stdout)),
        }])
    }

    fn check_args(&self, _served_name: &str, args: &[String]) -> Result<(), String> {
        // vLLM itself is the judge of its arguments; what Tollgate sets is refused before (`EngineArgs`).
        match args.iter().find(|a| a.contains('\0')) {
            Some(_) => Err("engine arguments cannot contain NUL bytes".into()),
            None => Ok(()),
        }
    }

    async fn start(&self, spec: &ReplicaSpec) -> Result<Started, DriverError> {
        let port = {
            let probe = std::net::TcpListener::bind((self.config.host.as_str(), 0))
                .map_err(|e| DriverError::Transient(format!("no free port: {e}")))?;
            probe
                .local_addr()
                .map_err(|e| DriverError::Transient(e.to_string()))?
                .port()
        };
        let (program, before) = self
            .config
            .command
            .split_first()
            .ok_or_else(|| DriverError::Permanent("no engine command configured".into()))?;
        let gpus = spec
            .gpus
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut child = tokio::process::Command::new(program)
            .args(before)
            .arg(&spec.served_name)
            .args(["--served-model-name", &spec.served_name])
            .args(["--host", &self.config.host])
            .args(["--port", &port.to_string()])
            .args(&spec.args)
            .env("CUDA_VISIBLE_DEVICES", gpus)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(false)
            .spawn()
            .map_err(|e| DriverError::Permanent(format!("cannot start {program}: {e}")))?;
        let pid = child
            .id()
            .ok_or_else(|| DriverError::Transient("the engine exited at once".into()))?;
        let log = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(out) = child.stdout.take() {
            keep_lines(out, log.clone(), self.config.log_lines);
        }
        if let Some(err) = child.stderr.take() {
            keep_lines(err, log.clone(), self.config.log_lines);
        }
        let exit = Arc::new(Mutex::new(None));
        {
            let exit = exit.clone();
            tokio::spawn(async move {
                let how = match child.wait().await {
                    Ok(status) => status.to_string(),
                    Err(e) => format!("lost track of the process: {e}"),
                };
                *exit.lock().unwrap_or_else(|p| p.into_inner()) = Some(how);
            });
        }
        let handle = format!("local:{pid}:{port}");
        self.procs().insert(handle.clone(), Proc { pid, log, exit });
        Ok(Started {
            handle,
            base_url: format!("http://{}:{port}", self.config.host),
        })
    }

    async fn observe(&self, handle: &str) -> Process {
        if let Some(p) = self.procs().get(handle) {
            let exit = p.exit.lock().unwrap_or_else(|e| e.into_inner()).clone();
            return match exit {
                None => Process::Running,
                Some(how) => {
                    let last = p
                        .log
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .back()
                        .cloned();
                    Process::Exited(match last {
                        Some(line) => format!("{how}; last output: {line}"),
                        None => how,
                    })
                }
            };
        }
        // Started by an earlier controller: adopted while its process lives.
        match parse_handle(handle) {
            Some((pid, _)) if alive(pid) => Process::Running,
            _ => Process::None,
        }
    }

    async fn stop(&self, handle: &str) -> Result<(), DriverError> {
        let known = self.procs().remove(handle).map(|p| p.pid);
        let Some(pid) = known.or_else(|| parse_handle(handle).map(|(pid, _)| pid)) else {
            return Ok(());
        };
        if !alive(pid) {
            return Ok(());
        }
        signal(pid, "TERM").await;
        for _ in 0..100 {
            if !alive(pid) {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        signal(pid, "KILL").await;
        Ok(())
    }

    async fn logs(&self, handle: &str) -> Vec<String> {
        self.procs().get(handle).map_or_else(Vec::new, |p| {
            p.log
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned()
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_parse() {
        assert_eq!(parse_handle("local:123:8000"), Some((123, 8000)));
        assert_eq!(parse_handle("sim:1:2"), None);
        assert_eq!(parse_handle("local:x:1"), None);
    }

    #[tokio::test]
    async fn inventory_comes_from_the_gpu_query() {
        let driver = LocalDriver::new(LocalConfig {
            command: vec!["true".into()],
            gpu_query: vec![
                "printf".into(),
                "0, NVIDIA H100 80GB HBM3, 81559, GPU-a\\n1, NVIDIA H100 80GB HBM3, 81559, GPU-b\\n".into(),
            ],
            node: "gpu-box".into(),
            host: "127.0.0.1".into(),
            log_lines: 10,
        })
        .unwrap();
        let nodes = driver.inventory().await.unwrap();
        assert_eq!(nodes[0].name, "gpu-box");
        assert_eq!(nodes[0].gpus.len(), 2);
        assert_eq!(nodes[0].gpus[1].product, "H100-80GB");
        let failing = LocalDriver::new(LocalConfig {
            gpu_query: vec!["false".into()],
            ..driver.config.clone()
        })
        .unwrap();
        assert!(matches!(
            failing.inventory().await,
            Err(DriverError::Transient(_))
        ));
    }
}

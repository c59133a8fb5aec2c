//! The local driver: one engine process per replica on this machine's GPUs (`vllm serve`, or any command that
//! takes vLLM's arguments, such as `tollgate-sim`), with `CUDA_VISIBLE_DEVICES` set to the placed GPUs. GPUs
//! come from `nvidia-smi` (the query is configurable, so a recorded answer can stand in). Each process's output
//! is kept in a bounded buffer the portal shows.
//!
//! Processes are not tied to this one: each runs in a process group of its own (a Ctrl-C or a service manager
//! stopping Tollgate does not reach it) and writes to a file, not a pipe to Tollgate (which would break when
//! Tollgate goes). When Tollgate restarts, the controller finds them by their handle (`local:PID:PORT`) and adopts
//! them instead of starting duplicates.

use super::{Driver, DriverError, ReplicaSpec, Started};
use crate::rules::lifecycle::Process;
use crate::rules::placement::Node;
use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

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
    replica: String,
    exit: Arc<Mutex<Option<String>>>,
}

/// Where a replica's engine writes its output.
fn log_path(replica: &str) -> std::path::PathBuf {
    let safe: String = replica
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    std::env::temp_dir()
        .join("tollgate-engines")
        .join(format!("{safe}.log"))
}

/// The last `max` lines of a file, reading at most its last 256 KiB.
fn tail(path: &std::path::Path, max: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let from = len.saturating_sub(256 * 1024);
    if file.seek(SeekFrom::Start(from)).is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let skip = lines.len().saturating_sub(max.max(1));
    lines[skip..]
        .iter()
        .map(|l| l.chars().take(2_000).collect())
        .collect()
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
        let path = log_path(&spec.replica_id);
        let log = path
            .parent()
            .map(std::fs::create_dir_all)
            .transpose()
            .and_then(|_| std::fs::File::create(&path))
            .map_err(|e| {
                DriverError::Transient(format!("cannot create {}: {e}", path.display()))
            })?;
        let err_log = log
            .try_clone()
            .map_err(|e| DriverError::Transient(format!("cannot share {}: {e}", path.display())))?;
        let mut child = tokio::process::Command::new(program)
            .args(before)
            .arg(&spec.served_name)
            .args(["--served-model-name", &spec.served_name])
            .args(["--host", &self.config.host])
            .args(["--port", &port.to_string()])
            .args(&spec.args)
            .env("CUDA_VISIBLE_DEVICES", gpus)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err_log))
            .process_group(0)
            .kill_on_drop(false)
            .spawn()
            .map_err(|e| DriverError::Permanent(format!("cannot start {program}: {e}")))?;
        let pid = child
            .id()
            .ok_or_else(|| DriverError::Transient("the engine exited at once".into()))?;
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
        self.procs().insert(
            handle.clone(),
            Proc {
                pid,
                replica: spec.replica_id.clone(),
                exit,
            },
        );
        Ok(Started {
            handle,
            base_url: format!("http://{}:{port}", self.config.host),
        })
    }

    async fn observe(&self, handle: &str) -> Process {
        let exited = self
            .procs()
            .get(handle)
            .map(|p| p.exit.lock().unwrap_or_else(|e| e.into_inner()).clone());
        if let Some(exit) = exited {
            return match exit {
                None => Process::Running,
                Some(how) => {
                    let last = self
                        .procs()
                        .get(handle)
                        .and_then(|p| tail(&log_path(&p.replica), 1).pop());
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

    async fn logs(&self, _handle: &str, replica_id: &str) -> Vec<String> {
        tail(&log_path(replica_id), self.config.log_lines)
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

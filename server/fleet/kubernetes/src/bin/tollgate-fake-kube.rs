//! The fake Kubernetes API server as a process, for tests that run `tollgate` as a process (the browser tests).
//!
//!   tollgate-fake-kube --kubeconfig PATH [--namespace NS] [--gpu-node NAME:GPUS:PRODUCT:MEMORY_MIB]...
//!
//! Writes a kubeconfig pointing at itself to PATH, prints `listening on URL`, and serves until killed. The test
//! plays the scheduler and the kubelet through `POST URL/fake/status/pods/NS/NAME` (see `testing.rs`).

#![allow(clippy::expect_used)] // a test tool: failing to start is how it reports a broken set-up

use tollgate_fleet_kubernetes::testing::FakeApi;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut kubeconfig = None;
    let mut namespace = "default".to_string();
    let mut nodes = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let value = it.next().expect("every option takes a value");
        match arg.as_str() {
            "--kubeconfig" => kubeconfig = Some(value.clone()),
            "--namespace" => namespace = value.clone(),
            "--gpu-node" => nodes.push(value.clone()),
            other => panic!("unknown option {other}"),
        }
    }
    let api = FakeApi::start().await;
    for node in nodes {
        let parts: Vec<&str> = node.split(':').collect();
        let [name, gpus, product, memory] = parts.as_slice() else {
            panic!("--gpu-node takes NAME:GPUS:PRODUCT:MEMORY_MIB, not {node}");
        };
        api.add_gpu_node(
            name,
            gpus.parse().expect("GPUS is a number"),
            product,
            memory.parse().expect("MEMORY_MIB is a number"),
        );
    }
    let path = kubeconfig.expect("--kubeconfig PATH is required");
    std::fs::write(&path, api.kubeconfig(&namespace)).expect("write the kubeconfig");
    println!("listening on {}", api.url);
    let _ = tokio::signal::ctrl_c().await;
}

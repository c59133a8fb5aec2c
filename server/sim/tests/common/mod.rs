//! Test support: start the simulator in-process or as the real binary, a minimal
//! HTTP/1.1 client over raw TCP (so the tests need no HTTP client crate), an SSE splitter
//! and a strict Prometheus text parser.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tollgate_sim::SimConfig;

/// Starts the simulator in this process on a random port.
pub async fn start(config: SimConfig) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = tollgate_sim::serve(config, listener).await;
    });
    addr
}

/// A zero-latency configuration for model `m`.
pub fn fast(model: &str) -> SimConfig {
    SimConfig::new(model).zero_latency()
}

/// The real binary, started with `args`; killed on drop.
pub struct Binary {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Binary {
    /// Starts `tollgate-sim ARGS --host 127.0.0.1 --port 0` and waits for the listening line.
    pub fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate-sim"))
            .args(args)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tollgate-sim");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read listening line");
        let url = line
            .trim()
            .strip_prefix("tollgate-sim listening on http://")
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        let addr = url.parse().expect("address");
        Self { child, addr }
    }

    /// Waits up to `timeout` for the process to exit; returns its status code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response as read off the wire.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Whether the body ended properly (final chunk / full Content-Length).
    pub complete: bool,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `data:` payloads of an SSE body.
    pub fn sse_data(&self) -> Vec<String> {
        self.body
            .split("\n\n")
            .filter_map(|ev| ev.strip_prefix("data: "))
            .map(str::to_string)
            .collect()
    }
}

/// One request with `Connection: close`; reads until the server closes.
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> Resp {
    http_with(addr, method, path, body, &[]).await
}

/// As [`http`], with extra headers.
pub async fn http_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Resp {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let body = body.unwrap_or("");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    // A cut connection may end in a reset: keep what was read.
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let (body, complete) = if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        dechunk(rest)
    } else if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        (rest[..len.min(rest.len())].to_vec(), rest.len() >= len)
    } else {
        (rest.to_vec(), true)
    };
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        complete,
    }
}

fn dechunk(mut data: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let size_str = String::from_utf8_lossy(&data[..eol]).into_owned();
        let Ok(size) = usize::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16)
        else {
            return (out, false);
        };
        data = &data[eol + 2..];
        if size == 0 {
            return (out, true);
        }
        if data.len() < size + 2 {
            out.extend_from_slice(&data[..size.min(data.len())]);
            return (out, false);
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// One sample of a Prometheus exposition.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: HashMap<String, String>,
    pub value: f64,
}

/// Parses Prometheus text format strictly: every line is a `# HELP`, a `# TYPE` or a
/// sample of a declared family; names and labels are well-formed; values are numbers.
pub fn parse_prometheus(text: &str) -> Result<Vec<Sample>, String> {
    let mut families: HashMap<String, String> = HashMap::new();
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let err = |m: &str| format!("line {}: {m}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("HELP"), Some(name), _) if valid_name(name) => {}
                (Some("TYPE"), Some(name), Some(kind)) if valid_name(name) => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(err("bad type"));
                    }
                    families.insert(name.to_string(), kind.to_string());
                }
                _ => return Err(err("bad comment")),
            }
            continue;
        }
        let (name_labels, value) = line.rsplit_once(' ').ok_or_else(|| err("no value"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().map_err(|_| err("bad value"))?,
        };
        let (name, labels) = match name_labels.split_once('{') {
            None => (name_labels, HashMap::new()),
            Some((name, rest)) => {
                let inner = rest
                    .strip_suffix('}')
                    .ok_or_else(|| err("unclosed labels"))?;
                (name, parse_labels(inner).map_err(|e| err(&e))?)
            }
        };
        if !valid_name(name) {
            return Err(err("bad metric name"));
        }
        let family = [
            ("_bucket", "histogram"),
            ("_sum", "histogram"),
            ("_count", "histogram"),
            ("_total", "counter"),
        ]
        .iter()
        .find_map(|(suffix, kind)| {
            name.strip_suffix(suffix)
                .filter(|base| families.get(*base).is_some_and(|k| k == kind))
        })
        .unwrap_or(name);
        let kind = families
            .get(family)
            .ok_or_else(|| err("sample without # TYPE"))?;
        if kind == "histogram" && name.ends_with("_bucket") && !labels.contains_key("le") {
            return Err(err("bucket without le"));
        }
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Ok(samples)
}

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_labels(mut s: &str) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    while !s.is_empty() {
        let (key, rest) = s.split_once("=\"").ok_or("label without =\"")?;
        if !valid_name(key) || key.contains(':') {
            return Err(format!("bad label name {key:?}"));
        }
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    _ => return Err("bad escape".into()),
                },
                '"' => {
                    end = Some(i);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end.ok_or("unterminated label value")?;
        out.insert(key.to_string(), value);
        s = &rest[end + 1..];
        s = s.strip_prefix(',').unwrap_or(s);
    }
    Ok(out)
}

/// The value of the first sample called `name` whose labels include `labels`.
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
        })
        .map(|s| s.value)
}

/// Scrapes and parses `/metrics`.
pub async fn scrape(addr: SocketAddr) -> Vec<Sample> {
    let r = http(addr, "GET", "/metrics", None).await;
    assert_eq!(r.status, 200);
    parse_prometheus(&r.body).unwrap_or_else(|e| panic!("{e}"))
}

/// A chat request body.
pub fn chat_body(content: &str, max_tokens: u32, stream: bool) -> String {
    serde_json::json!({
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "stream": stream,
    })
    .to_string()
}

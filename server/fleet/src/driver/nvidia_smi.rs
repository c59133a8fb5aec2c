//! This machine's GPUs, from `nvidia-smi --query-gpu=index,name,memory.total,uuid --format=csv`.

use crate::rules::placement::Gpu;

/// The query the local driver runs by default.
pub const QUERY: [&str; 3] = [
    "nvidia-smi",
    "--query-gpu=index,name,memory.total,uuid",
    "--format=csv,noheader,nounits",
];

/// Reads the CSV (with or without its header and units) into GPUs; lines that do not parse are skipped.
pub fn parse(csv: &str) -> Vec<Gpu> {
    csv.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("index"))
        .filter_map(|line| {
            let mut fields = line.split(',').map(str::trim);
            let index = fields.next()?.parse().ok()?;
            let name = fields.next()?;
            let memory_mib = fields.next()?.trim_end_matches("MiB").trim().parse().ok()?;
            Some(Gpu {
                index,
                product: product_name(name),
                memory_mib,
                healthy: true,
                holder: None,
            })
        })
        .collect()
}

/// The short product name placement compares: `NVIDIA H100 80GB HBM3` -> `H100-80GB`,
/// `NVIDIA A100-SXM4-40GB` -> `A100-40GB`, `NVIDIA L4` -> `L4`.
pub fn product_name(name: &str) -> String {
    let name = name.trim();
    let name = name.strip_prefix("NVIDIA").unwrap_or(name).trim();
    let mut tokens = name.split([' ', '-']).filter(|t| !t.is_empty());
    let Some(model) = tokens.next() else {
        return "unknown".into();
    };
    let memory = tokens.find(|t| {
        let u = t.to_ascii_uppercase();
        u.ends_with("GB") && u.len() > 2 && u[..u.len() - 2].chars().all(|c| c.is_ascii_digit())
    });
    match memory {
        Some(m) => format!("{model}-{}", m.to_ascii_uppercase()),
        None => model.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In the shape `nvidia-smi --query-gpu=index,name,memory.total,uuid --format=csv` prints (header, units,
    /// the names NVIDIA's driver reports for these cards), with a malformed line added. No GPU machine was at
    /// hand to record a real one.
    const RECORDED: &str = "index, name, memory.total [MiB], uuid
0, NVIDIA H100 80GB HBM3, 81559 MiB, GPU-5b5a3c1e-6d0b-2f7e-1a3c-0e0f3d2b9a11
1, NVIDIA A100-SXM4-40GB, 40960 MiB, GPU-77aa3c1e-6d0b-2f7e-1a3c-0e0f3d2b9a12
garbage line
";

    #[test]
    fn gpus_are_read_from_the_csv() {
        let gpus = parse(RECORDED);
        assert_eq!(gpus.len(), 2);
        assert_eq!(
            (gpus[0].index, gpus[0].product.as_str(), gpus[0].memory_mib),
            (0, "H100-80GB", 81559)
        );
        assert_eq!(gpus[1].product, "A100-40GB");
        let plain = parse("3, NVIDIA L4, 23034, GPU-1\n");
        assert_eq!((plain[0].index, plain[0].product.as_str()), (3, "L4"));
        assert!(parse("").is_empty());
    }
}

//! The Prometheus text exposition format, version 0.0.4: families (`# HELP`, `# TYPE`), samples, histograms.

use std::fmt::{self, Write};

use crate::Histogram;

/// How floating-point numbers (values, histogram sums, `le` bounds) are written. Integers are always written as
/// integers. Both styles write `NaN`, `+Inf` and `-Inf` as the format spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Floats {
    /// The shortest text that reads back as the same number, as Go's client writes: `1`, `0.25`.
    Shortest,
    /// As Python's `prometheus_client` (and so vLLM) writes: whole numbers keep their `.0`: `1.0`, `0.25`.
    Python,
}

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A sample's value.
pub trait Value {
    fn write(&self, out: &mut String, floats: Floats);
}

impl Value for u64 {
    fn write(&self, out: &mut String, _: Floats) {
        let _ = write!(out, "{self}");
    }
}

impl Value for i64 {
    fn write(&self, out: &mut String, _: Floats) {
        let _ = write!(out, "{self}");
    }
}

impl Value for u32 {
    fn write(&self, out: &mut String, _: Floats) {
        let _ = write!(out, "{self}");
    }
}

impl Value for f64 {
    fn write(&self, out: &mut String, floats: Floats) {
        let v = *self;
        let _ = if v.is_nan() {
            out.write_str("NaN")
        } else if v.is_infinite() {
            out.write_str(if v > 0.0 { "+Inf" } else { "-Inf" })
        } else if floats == Floats::Python && v.fract() == 0.0 && v.abs() < 1e15 {
            write!(out, "{v:.1}")
        } else {
            write!(out, "{v}")
        };
    }
}

/// A label set, escaped once: `a="x",b="y"`. The only place label values are escaped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels(String);

impl Labels {
    /// No labels.
    pub fn new() -> Self {
        Self::default()
    }

    /// These labels and `name="value"` (`value` escaped: `\` as `\\`, `"` as `\"`, a newline as `\n`).
    pub fn with(mut self, name: &str, value: impl fmt::Display) -> Self {
        debug_assert!(crate::parse::is_label_name(name), "bad label name {name:?}");
        if !self.0.is_empty() {
            self.0.push(',');
        }
        self.0.push_str(name);
        self.0.push_str("=\"");
        let _ = write!(Escaped(&mut self.0), "{value}");
        self.0.push('"');
        self
    }

    /// The label set as written between the braces.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Writes through to a string, escaping as a label value.
struct Escaped<'a>(&'a mut String);

impl Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(i) = rest.find(['\\', '"', '\n']) {
            self.0.push_str(&rest[..i]);
            self.0.push_str(match rest.as_bytes()[i] {
                b'\\' => "\\\\",
                b'"' => "\\\"",
                _ => "\\n",
            });
            rest = &rest[i + 1..];
        }
        self.0.push_str(rest);
        Ok(())
    }
}

/// A text exposition being written.
#[derive(Debug)]
pub struct Exposition {
    out: String,
    floats: Floats,
}

impl Exposition {
    /// An empty exposition that writes floats in this style.
    pub fn new(floats: Floats) -> Self {
        Self {
            out: String::with_capacity(8192),
            floats,
        }
    }

    /// Opens a metric family: its `# HELP` (escaped: `\` as `\\`, a newline as `\n`) and `# TYPE` lines. A
    /// counter's family is named without `_total`; its samples carry it.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        debug_assert!(crate::parse::is_metric_name(name), "bad name {name:?}");
        let out = &mut self.out;
        let _ = write!(out, "# HELP {name} ");
        let mut rest = help;
        while let Some(i) = rest.find(['\\', '\n']) {
            out.push_str(&rest[..i]);
            out.push_str(if rest.as_bytes()[i] == b'\\' {
                "\\\\"
            } else {
                "\\n"
            });
            rest = &rest[i + 1..];
        }
        out.push_str(rest);
        let _ = writeln!(out, "\n# TYPE {name} {}", kind.as_str());
    }

    /// One sample: `name{labels} value`.
    pub fn sample(&mut self, name: &str, labels: &Labels, value: impl Value) {
        self.sample_with(name, labels, None, value);
    }

    /// A histogram's samples: a `_bucket` per bound with the `le` label and the `+Inf` one, `_sum`, `_count`.
    pub fn histogram(&mut self, name: &str, labels: &Labels, h: &Histogram) {
        let cumulative = h.cumulative();
        let total = cumulative.last().copied().unwrap_or(0);
        let bucket = format!("{name}_bucket");
        let mut le = String::new();
        for (bound, count) in h.bounds().iter().zip(&cumulative) {
            le.clear();
            bound.write(&mut le, self.floats);
            self.sample_with(&bucket, labels, Some(&le), *count);
        }
        self.sample_with(&bucket, labels, Some("+Inf"), total);
        self.sample(&format!("{name}_sum"), labels, h.sum());
        self.sample(&format!("{name}_count"), labels, total);
    }

    fn sample_with(&mut self, name: &str, labels: &Labels, le: Option<&str>, value: impl Value) {
        let out = &mut self.out;
        out.push_str(name);
        if !labels.is_empty() || le.is_some() {
            out.push('{');
            out.push_str(labels.as_str());
            if let Some(le) = le {
                if !labels.is_empty() {
                    out.push(',');
                }
                out.push_str("le=\"");
                out.push_str(le);
                out.push('"');
            }
            out.push('}');
        }
        out.push(' ');
        value.write(out, self.floats);
        out.push('\n');
    }

    /// The text written so far.
    pub fn as_str(&self) -> &str {
        &self.out
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{parse_line, Line};

    #[test]
    fn label_values_are_escaped_and_read_back() {
        let weird = "a\\b \"c\" d\ne,f}g";
        let labels = Labels::new().with("model", weird).with("status", 200);
        assert_eq!(
            labels.as_str(),
            r#"model="a\\b \"c\" d\ne,f}g",status="200""#
        );
        let mut x = Exposition::new(Floats::Shortest);
        x.sample("x_total", &labels, 3u64);
        let Ok(Line::Sample(s)) = parse_line(x.as_str().trim_end()) else {
            panic!("{}", x.as_str())
        };
        assert_eq!(s.label("model"), Some(weird));
        assert_eq!(s.label("status"), Some("200"));
        assert_eq!(s.value, 3.0);
    }

    #[test]
    fn floats_in_either_style() {
        let mut out = String::new();
        for v in [
            1.0,
            0.25,
            120.0,
            0.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            v.write(&mut out, Floats::Shortest);
            out.push(' ');
            v.write(&mut out, Floats::Python);
            out.push('|');
        }
        assert_eq!(
            out,
            "1 1.0|0.25 0.25|120 120.0|0 0.0|NaN NaN|+Inf +Inf|-Inf -Inf|"
        );
    }

    #[test]
    fn a_histogram_is_written_cumulatively() {
        let h = Histogram::new(&[0.1, 1.0]);
        for v in [0.05, 0.5, 5.0] {
            h.observe(v);
        }
        let mut x = Exposition::new(Floats::Python);
        x.family("x", Kind::Histogram, "An x.\nOn two lines, with a \\.");
        x.histogram("x", &Labels::new().with("a", "b"), &h);
        x.histogram("y", &Labels::new(), &h);
        assert_eq!(
            x.finish(),
            "# HELP x An x.\\nOn two lines, with a \\\\.\n# TYPE x histogram\n\
             x_bucket{a=\"b\",le=\"0.1\"} 1\nx_bucket{a=\"b\",le=\"1.0\"} 2\nx_bucket{a=\"b\",le=\"+Inf\"} 3\n\
             x_sum{a=\"b\"} 5.55\nx_count{a=\"b\"} 3\n\
             y_bucket{le=\"0.1\"} 1\ny_bucket{le=\"1.0\"} 2\ny_bucket{le=\"+Inf\"} 3\ny_sum 5.55\ny_count 3\n"
        );
    }
}

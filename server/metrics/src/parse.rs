//! A parser for the Prometheus text exposition format, version 0.0.4, line by line:
//! `# HELP name text`, `# TYPE name type`, other comments, blank lines, and samples
//! `name{label="value",...} value [timestamp]`, with blanks or tabs between tokens, label values escaped
//! (`\\`, `\"`, `\n`) and free to hold `,`, `}` or `=`, values `NaN`, `+Inf` and `-Inf`, and timestamps in
//! milliseconds.

use std::borrow::Cow;
use std::fmt;

/// One line of an exposition.
#[derive(Debug, Clone, PartialEq)]
pub enum Line<'a> {
    /// Nothing but blanks.
    Blank,
    /// `# HELP name text`, the text unescaped.
    Help {
        name: &'a str,
        text: Cow<'a, str>,
    },
    /// `# TYPE name type`: counter, gauge, histogram, summary or untyped.
    Type {
        name: &'a str,
        kind: &'a str,
    },
    /// Any other comment.
    Comment(&'a str),
    Sample(Sample<'a>),
}

/// One sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    pub name: &'a str,
    /// In the order written, values unescaped.
    pub labels: Vec<(&'a str, Cow<'a, str>)>,
    pub value: f64,
    /// Milliseconds since the epoch, when the line gives one.
    pub timestamp_ms: Option<i64>,
}

impl Sample<'_> {
    /// The value of the label called `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_ref())
    }
}

/// Why a line is not valid text format, and where (a byte offset in the line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub at: usize,
    pub reason: &'static str,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.reason, self.at)
    }
}

impl std::error::Error for Error {}

/// Every line of `text`, numbered from 1, parsed.
pub fn lines(text: &str) -> impl Iterator<Item = (usize, Result<Line<'_>, Error>)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, parse_line(l)))
}

/// The samples of `text`, skipping every line that is not a well-formed sample.
pub fn samples(text: &str) -> impl Iterator<Item = Sample<'_>> {
    text.lines().filter_map(|l| match parse_line(l) {
        Ok(Line::Sample(s)) => Some(s),
        _ => None,
    })
}

/// Parses one line (without its line break).
pub fn parse_line(line: &str) -> Result<Line<'_>, Error> {
    let mut c = Cursor { s: line, at: 0 };
    c.blanks();
    match c.peek() {
        None => Ok(Line::Blank),
        Some(b'#') => {
            c.at += 1;
            comment(c)
        }
        Some(_) => sample(c).map(Line::Sample),
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_metric_name(s: &str) -> bool {
    name_len(s.as_bytes(), true) == s.len() && !s.is_empty()
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(s: &str) -> bool {
    name_len(s.as_bytes(), false) == s.len() && !s.is_empty()
}

/// How many leading bytes of `b` form a name.
fn name_len(b: &[u8], colons: bool) -> usize {
    b.iter()
        .enumerate()
        .take_while(|(i, &c)| {
            c.is_ascii_alphabetic()
                || c == b'_'
                || (colons && c == b':')
                || (*i > 0 && c.is_ascii_digit())
        })
        .count()
}

struct Cursor<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.at).copied()
    }

    fn rest(&self) -> &'a str {
        &self.s[self.at..]
    }

    fn err<T>(&self, reason: &'static str) -> Result<T, Error> {
        Err(Error {
            at: self.at,
            reason,
        })
    }

    /// Skips blanks and tabs; whether there were any.
    fn blanks(&mut self) -> bool {
        let start = self.at;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
        self.at > start
    }

    /// The text up to the next blank, tab or the end.
    fn token(&mut self) -> &'a str {
        let rest = self.rest();
        let len = rest.find([' ', '\t']).unwrap_or(rest.len());
        self.at += len;
        &rest[..len]
    }

    fn name(&mut self, colons: bool, reason: &'static str) -> Result<&'a str, Error> {
        let rest = self.rest();
        let len = name_len(rest.as_bytes(), colons);
        if len == 0 {
            return self.err(reason);
        }
        self.at += len;
        Ok(&rest[..len])
    }

    fn expect(&mut self, b: u8, reason: &'static str) -> Result<(), Error> {
        if self.peek() != Some(b) {
            return self.err(reason);
        }
        self.at += 1;
        Ok(())
    }

    /// A label value after its opening quote, through its closing quote.
    fn label_value(&mut self) -> Result<Cow<'a, str>, Error> {
        let rest = self.rest();
        let Some(end) = rest.find(['"', '\\']) else {
            return self.err("unterminated label value");
        };
        if rest.as_bytes()[end] == b'"' {
            self.at += end + 1;
            return Ok(Cow::Borrowed(&rest[..end]));
        }
        let mut value = String::with_capacity(rest.len());
        let mut chars = rest.char_indices();
        while let Some((i, ch)) = chars.next() {
            match ch {
                '"' => {
                    self.at += i + 1;
                    return Ok(Cow::Owned(value));
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, e @ ('\\' | '"'))) => value.push(e),
                    _ => {
                        self.at += i;
                        return self.err("invalid escape in a label value");
                    }
                },
                ch => value.push(ch),
            }
        }
        self.err("unterminated label value")
    }
}

fn comment(mut c: Cursor<'_>) -> Result<Line<'_>, Error> {
    c.blanks();
    let start = c.at;
    let keyword = c.token();
    if (keyword != "HELP" && keyword != "TYPE") || !c.blanks() {
        return Ok(Line::Comment(&c.s[start..]));
    }
    let name = c.name(true, "expected a metric name")?;
    let separated = c.blanks();
    if c.peek().is_some() && !separated {
        return c.err("invalid metric name");
    }
    if keyword == "HELP" {
        let text = c.rest();
        return Ok(Line::Help {
            name,
            text: unescape_help(text),
        });
    }
    let kind = c.token();
    if !matches!(
        kind,
        "counter" | "gauge" | "histogram" | "summary" | "untyped"
    ) {
        return c.err("unknown metric type");
    }
    c.blanks();
    if c.peek().is_some() {
        return c.err("unexpected text after the type");
    }
    Ok(Line::Type { name, kind })
}

/// A docstring with `\\` and `\n` unescaped (any other backslash kept as written).
fn unescape_help(text: &str) -> Cow<'_, str> {
    if !text.contains('\\') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        match (ch, chars.peek()) {
            ('\\', Some('\\')) => {
                out.push('\\');
                chars.next();
            }
            ('\\', Some('n')) => {
                out.push('\n');
                chars.next();
            }
            (ch, _) => out.push(ch),
        }
    }
    Cow::Owned(out)
}

fn sample(mut c: Cursor<'_>) -> Result<Sample<'_>, Error> {
    let name = c.name(true, "expected a metric name")?;
    c.blanks();
    let mut labels: Vec<(&str, Cow<'_, str>)> = Vec::new();
    if c.peek() == Some(b'{') {
        c.at += 1;
        loop {
            c.blanks();
            if c.peek() == Some(b'}') {
                c.at += 1;
                break;
            }
            let label = c.name(false, "expected a label name")?;
            if labels.iter().any(|(n, _)| *n == label) {
                return c.err("label repeated");
            }
            c.blanks();
            c.expect(b'=', "expected '=' after a label name")?;
            c.blanks();
            c.expect(b'"', "expected a quoted label value")?;
            labels.push((label, c.label_value()?));
            c.blanks();
            match c.peek() {
                Some(b',') => c.at += 1,
                Some(b'}') => {
                    c.at += 1;
                    break;
                }
                _ => return c.err("expected ',' or '}' after a label value"),
            }
        }
        c.blanks();
    }
    let at = c.at;
    let value = parse_value(c.token()).ok_or(Error {
        at,
        reason: "expected a number",
    })?;
    let mut timestamp_ms = None;
    if c.blanks() && c.peek().is_some() {
        let at = c.at;
        timestamp_ms = Some(c.token().parse::<i64>().map_err(|_| Error {
            at,
            reason: "expected a timestamp in milliseconds",
        })?);
        c.blanks();
    }
    if c.peek().is_some() {
        return c.err("unexpected text after the sample");
    }
    Ok(Sample {
        name,
        labels,
        value,
        timestamp_ms,
    })
}

/// A sample value: a decimal number, `NaN`, `+Inf`, `-Inf` (and `Inf`), as Go's `strconv.ParseFloat` reads them.
fn parse_value(v: &str) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Sample<'_> {
        match parse_line(line) {
            Ok(Line::Sample(s)) => s,
            other => panic!("{line:?}: {other:?}"),
        }
    }

    #[test]
    fn a_sample_with_a_timestamp_keeps_its_value() {
        let s = one(r#"vllm:num_requests_waiting{engine="0",model_name="m"} 3 1712345678901"#);
        assert_eq!(s.name, "vllm:num_requests_waiting");
        assert_eq!(s.value, 3.0);
        assert_eq!(s.timestamp_ms, Some(1712345678901));
        assert_eq!(s.label("model_name"), Some("m"));
        let s = one("up 1 -5");
        assert_eq!((s.value, s.timestamp_ms), (1.0, Some(-5)));
    }

    #[test]
    fn label_values_may_hold_quotes_braces_commas_and_escapes() {
        let s = one(r#"m{a="x} y",b="say \"hi\", \\o/\nbye",c="={}"} 2.5"#);
        assert_eq!(s.label("a"), Some("x} y"));
        assert_eq!(s.label("b"), Some("say \"hi\", \\o/\nbye"));
        assert_eq!(s.label("c"), Some("={}"));
        assert_eq!(s.labels.len(), 3);
        assert_eq!(s.value, 2.5);
        assert!(matches!(s.labels[0].1, Cow::Borrowed(_)));
        assert!(matches!(s.labels[1].1, Cow::Owned(_)));
    }

    #[test]
    fn special_values() {
        assert!(one("m NaN").value.is_nan());
        assert_eq!(one("m +Inf").value, f64::INFINITY);
        assert_eq!(one("m -Inf").value, f64::NEG_INFINITY);
        assert_eq!(one("m{le=\"+Inf\"} 1e3").value, 1000.0);
        assert_eq!(one("m -0.25").value, -0.25);
    }

    #[test]
    fn blanks_tabs_and_a_trailing_comma() {
        let s = one("  m { a = \"1\" ,\tb=\"2\", }\t7  ");
        assert_eq!(
            (s.label("a"), s.label("b"), s.value),
            (Some("1"), Some("2"), 7.0)
        );
        assert_eq!(one("m{} 1").labels, vec![]);
        assert_eq!(one("m{a=\"b\"}1").value, 1.0);
        assert_eq!(parse_line(""), Ok(Line::Blank));
        assert_eq!(parse_line(" \t"), Ok(Line::Blank));
    }

    #[test]
    fn help_type_and_comments() {
        assert_eq!(
            parse_line(r"# HELP vllm:x Some \\ help\non two lines"),
            Ok(Line::Help {
                name: "vllm:x",
                text: Cow::Owned("Some \\ help\non two lines".into())
            })
        );
        assert_eq!(
            parse_line("# HELP x"),
            Ok(Line::Help {
                name: "x",
                text: Cow::Borrowed("")
            })
        );
        assert!(parse_line("# HELP 9x Nine.").is_err());
        assert_eq!(
            parse_line("#\tTYPE  x_total   counter "),
            Ok(Line::Type {
                name: "x_total",
                kind: "counter"
            })
        );
        assert!(parse_line("# TYPE x countr").is_err());
        assert!(parse_line("# TYPE x").is_err());
        assert_eq!(parse_line("# EOF"), Ok(Line::Comment("EOF")));
        assert_eq!(
            parse_line("#HELPless remark"),
            Ok(Line::Comment("HELPless remark"))
        );
    }

    #[test]
    fn malformed_lines_are_errors() {
        for bad in [
            "m",
            "m ",
            "m x",
            "m 1 2 3",
            "m 1 1.5",
            "m{a=\"1\" 1",
            "m{a=\"1} 1",
            "m{a=1} 1",
            "m{a=\"\\t\"} 1",
            "m{a=\"1\",a=\"2\"} 1",
            "m{1a=\"1\"} 1",
            "m{a:b=\"1\"} 1",
            "1m 1",
            "{a=\"b\"} 1",
            "m{a=\"b\"} ",
        ] {
            assert!(parse_line(bad).is_err(), "{bad:?}: {:?}", parse_line(bad));
        }
    }

    #[test]
    fn samples_skip_what_is_not_a_sample() {
        let text = "# HELP a A.\n# TYPE a gauge\n\na 1\nbroken{ 2\nb{x=\"}\"} 3 1700000000000\n";
        let got: Vec<(&str, f64)> = samples(text).map(|s| (s.name, s.value)).collect();
        assert_eq!(got, vec![("a", 1.0), ("b", 3.0)]);
        let errors: Vec<usize> = lines(text)
            .filter(|(_, l)| l.is_err())
            .map(|(n, _)| n)
            .collect();
        assert_eq!(errors, vec![5]);
    }

    #[test]
    fn names() {
        assert!(is_metric_name("vllm:num_requests_waiting"));
        assert!(is_metric_name("_x9"));
        assert!(!is_metric_name("9x"));
        assert!(!is_metric_name(""));
        assert!(is_label_name("model_name"));
        assert!(!is_label_name("a:b"));
    }
}

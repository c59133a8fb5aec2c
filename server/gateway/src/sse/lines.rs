//! Where an event ends and which of its lines are `data:` lines, as the WHATWG server-sent events specification
//! reads a stream: a line ends at `\r\n`, `\n` or `\r`, and an event ends at an empty line.

use memchr::memchr2;
use std::ops::Range;

/// One event at the start of some bytes.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct EventEnd {
    /// Where the event (its blank line included) ends.
    pub end: usize,
    /// The blank line ended with a `\r` that was the last byte: if the next bytes start with `\n`, that `\n`
    /// belongs to this event (the two are one line end).
    pub open_cr: bool,
    /// The value of the first `data` line, and how many there are.
    pub first_data: Option<Range<usize>>,
    pub data_lines: usize,
}

/// The event that starts at the beginning of `s`, if its blank line is there. One pass over the event: each line
/// end is found with `memchr2` (for an event as vLLM writes it, `data: {...}\n\n`, two calls).
pub(super) fn event_end(s: &[u8]) -> Option<EventEnd> {
    let mut first_data = None;
    let mut data_lines = 0;
    let (end, open_cr) = scan(s, |line| {
        if let Some(value) = data_value(s, line) {
            data_lines += 1;
            first_data.get_or_insert(value);
        }
    })?;
    Some(EventEnd {
        end,
        open_cr,
        first_data,
        data_lines,
    })
}

/// A line (without its end) and where its line end ends.
#[derive(Debug, Clone)]
pub(super) struct Line {
    pub text: Range<usize>,
    pub end: usize,
}

/// Calls `on_line` for each non-empty line of the event at the start of `s`; returns where the event ends (after
/// its blank line) and whether that blank line ended with a `\r` that was the last byte of `s`. None when `s`
/// holds no blank line yet (a line ended by a last `\r` may still be a `\r\n`, so it waits for the next byte).
pub(super) fn scan(s: &[u8], mut on_line: impl FnMut(Line)) -> Option<(usize, bool)> {
    let mut start = 0;
    loop {
        let at = start + memchr2(b'\n', b'\r', s.get(start..)?)?;
        let (end, open_cr) = match (s[at], s.get(at + 1)) {
            (b'\r', Some(b'\n')) => (at + 2, false),
            (b'\r', None) => (at + 1, true),
            _ => (at + 1, false),
        };
        if at == start {
            return Some((end, open_cr));
        }
        if open_cr {
            return None;
        }
        on_line(Line {
            text: start..at,
            end,
        });
        start = end;
    }
}

/// The value of a `data` field line (`data:value`, `data: value` with the one optional space taken off, or a
/// bare `data`), as a range of `s`.
pub(super) fn data_value(s: &[u8], line: Line) -> Option<Range<usize>> {
    let text = &s[line.text.clone()];
    let rest = text.strip_prefix(b"data")?;
    let value_at = match rest {
        [] => rest.len(),
        [b':', b' ', ..] => 2,
        [b':', ..] => 1,
        _ => return None,
    };
    let start = line.text.start + 4 + value_at;
    Some(start..line.text.end)
}

/// The event's data: its `data` lines' values joined with `\n`, as the specification builds it.
pub(super) fn joined_data(event: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(event.len());
    let mut first = true;
    let _ = scan(event, |line| {
        if let Some(v) = data_value(event, line) {
            if !first {
                out.push(b'\n');
            }
            first = false;
            out.extend_from_slice(&event[v]);
        }
    });
    out
}

/// The event with its data replaced by `data` (its lines written as `data:` lines where the first one was, each
/// ended as the event's first line is); its other lines (comments, `event:`, `id:`, `retry:`) and its blank line
/// stay as they were.
pub(super) fn with_data(event: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(event.len() + 16);
    let mut eol: Option<Range<usize>> = None;
    let mut written = false;
    let mut blank_from = 0;
    let _ = scan(event, |line| {
        blank_from = line.end;
        let eol = eol.get_or_insert(line.text.end..line.end).clone();
        if data_value(event, line.clone()).is_none() {
            out.extend_from_slice(&event[line.text.start..line.end]);
        } else if !written {
            written = true;
            for piece in data.split(|&b| b == b'\n') {
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(piece);
                out.extend_from_slice(&event[eol.clone()]);
            }
        }
    });
    let blank = &event[blank_from..];
    if out.last() == Some(&b'\r') && blank.first() == Some(&b'\n') {
        // A written line ended by `\r` before a blank line `\n` would make one `\r\n`: that line gets the `\n`.
        out.push(b'\n');
    }
    out.extend_from_slice(blank);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(s: &str) -> Option<(usize, bool, usize)> {
        event_end(s.as_bytes()).map(|e| (e.end, e.open_cr, e.data_lines))
    }

    #[test]
    fn an_event_ends_at_a_blank_line_whatever_ends_its_lines() {
        assert_eq!(end("data: a\n\nrest"), Some((9, false, 1)));
        assert_eq!(end("data: a\r\n\r\nrest"), Some((11, false, 1)));
        assert_eq!(end("data: a\r\rrest"), Some((9, false, 1)));
        assert_eq!(end("data: a\r\n\nrest"), Some((10, false, 1)));
        assert_eq!(end("data: a\n\r\nrest"), Some((10, false, 1)));
        assert_eq!(end("data: a\r\r"), Some((9, true, 1)));
        assert_eq!(
            end(": c\nevent: e\ndata: a\ndata\nid: 1\n\n"),
            Some((33, false, 2))
        );
        assert_eq!(end("\n"), Some((1, false, 0)));
        for open in ["data: a", "data: a\n", "data: a\r", "data: a\r\n"] {
            assert_eq!(end(open), None, "{open:?}");
        }
    }

    #[test]
    fn data_values_lose_one_space_only() {
        fn value(s: &str) -> Option<&str> {
            data_value(
                s.as_bytes(),
                Line {
                    text: 0..s.len(),
                    end: s.len(),
                },
            )
            .map(|r| &s[r])
        }
        assert_eq!(value("data: x"), Some("x"));
        assert_eq!(value("data:x"), Some("x"));
        assert_eq!(value("data:  x"), Some(" x"));
        assert_eq!(value("data"), Some(""));
        assert_eq!(value("data:"), Some(""));
        assert_eq!(value("database: x"), None);
        assert_eq!(value(": data: x"), None);
        assert_eq!(value("event: data"), None);
    }

    #[test]
    fn data_lines_are_joined_and_rewritten_in_place() {
        let event = b": hi\r\nevent: e\r\ndata: {\"a\":\r\ndata:1}\r\nid: 7\r\n\r\n";
        assert_eq!(joined_data(event), b"{\"a\":\n1}");
        assert_eq!(
            with_data(event, b"{}\n{}"),
            b": hi\r\nevent: e\r\ndata: {}\r\ndata: {}\r\nid: 7\r\n\r\n"
        );
        // Lines ended by `\r` before a blank line ended by `\n` stay apart from it.
        assert_eq!(
            with_data(b"data: a\rdata: b\n\n", b"c\nd"),
            b"data: c\rdata: d\r\n\n"
        );
    }
}

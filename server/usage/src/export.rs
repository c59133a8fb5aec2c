//! CSV export of the records behind any dashboard view, streamed: records are read by keyset pages of
//! [`PAGE`] rows (`Store::scan_usage`, oldest first) and each page becomes one chunk of the response body, so ten
//! million rows export in constant memory. The scope and filters are the dashboard's, under the same role rules.

use crate::{Selection, Usage};
use futures_util::stream::{self, Stream};
use tollgate_domain::DomainError;
use tollgate_identity::{internal, Caller};
use tollgate_store::{RecordScan, Store, UsageRow};

/// Records read (and written out) at a time.
pub const PAGE: i64 = 2_000;

pub const HEADER: &str =
    "at_ms,request_id,tenant_id,team_id,subscription_id,key_id,source,model,endpoint,status,\
prompt_tokens,completion_tokens,latency_ms,ttft_ms,streamed,client_disconnected,refusal\n";

/// One CSV field: quoted when it holds a comma, a quote or a line break (RFC 4180).
fn field(out: &mut String, v: &str) {
    if v.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&v.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(v);
    }
}

/// One record as a CSV line.
pub fn line(out: &mut String, r: &UsageRow) {
    use std::fmt::Write;
    let _ = write!(out, "{},", r.at);
    for v in [
        r.request_id.as_str(),
        &r.tenant_id,
        &r.team_id,
        &r.subscription_id,
        r.key_id.as_deref().unwrap_or(""),
        &r.source,
        &r.model,
        &r.endpoint,
    ] {
        field(out, v);
        out.push(',');
    }
    let _ = write!(
        out,
        "{},{},{},{},{},{},{},",
        r.status,
        r.prompt_tokens,
        r.completion_tokens,
        r.latency_ms,
        r.ttft_ms.map(|t| t.to_string()).unwrap_or_default(),
        r.streamed,
        r.client_disconnected
    );
    field(out, &r.refusal);
    out.push('\n');
}

struct Cursor {
    store: Store,
    scan: RecordScan,
    after: Option<(i64, String)>,
    started: bool,
    done: bool,
}

impl Usage {
    /// The records of the view (scope, range, filters) as a stream of CSV chunks, the header first. Authorized
    /// before the first byte: a caller outside the tenant gets NotFound, not an empty file.
    pub async fn export_csv(
        &self,
        caller: &Caller,
        tenant_id: Option<&str>,
        sel: &Selection,
    ) -> Result<impl Stream<Item = Result<String, DomainError>> + Send + 'static, DomainError> {
        let scope = self.scope(caller, tenant_id).await?;
        let scan = sel.records_in(scope, false, false);
        let start = Cursor {
            store: self.store.clone(),
            scan,
            after: None,
            started: false,
            done: false,
        };
        Ok(stream::unfold(start, |mut c| async move {
            if c.done {
                return None;
            }
            let mut out = String::new();
            if !c.started {
                c.started = true;
                out.push_str(HEADER);
            }
            let after = c.after.as_ref().map(|(at, id)| (*at, id.as_str()));
            match c.store.scan_usage(&c.scan, after, PAGE).await {
                Err(e) => {
                    c.done = true;
                    Some((Err(internal(e)), c))
                }
                Ok(rows) => {
                    c.done = rows.len() < PAGE as usize;
                    c.after = rows.last().map(|r| (r.at, r.id.clone()));
                    for r in &rows {
                        line(&mut out, r);
                    }
                    Some((Ok(out), c))
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_with_commas_or_quotes_are_quoted() {
        let mut out = String::new();
        field(&mut out, "plain");
        out.push(',');
        field(&mut out, "a,b");
        out.push(',');
        field(&mut out, "say \"hi\"");
        assert_eq!(out, r#"plain,"a,b","say ""hi""""#);
    }
}

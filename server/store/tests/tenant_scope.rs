//! Tenant isolation holds in the store, not only in its callers: every public store function whose SQL touches a
//! tenant-owned table takes the tenant (a `tenant_id: &str` parameter, or a parameter whose type carries a
//! non-optional `tenant_id` field), unless it is listed below as cross-tenant by design, with the reason.
//!
//! The test reads the store's own source, so a new function on a tenant-owned table that forgets the tenant fails
//! here before any caller can use it. It also fails when an exception names a function that no longer exists, so the
//! list cannot rot.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Tables whose rows belong to one tenant (directly by `tenant_id`, or through a team).
const TENANT_OWNED: &[&str] = &[
    "memberships",
    "teams",
    "team_members",
    "invitations",
    "subscriptions",
    "api_keys",
    "api_key_subscriptions",
    "usage_records",
    "usage_rollup_minute",
    "usage_rollup_hour",
    "usage_rollup_day",
    "audit_events",
    "usage_alerts",
    "alert_deliveries",
    "tenant_webhooks",
];

/// Store functions that touch tenant-owned tables without taking one tenant, and why that is right.
const CROSS_TENANT: &[(&str, &str)] = &[
    (
        "tenant_of_subscription",
        "a locator: returns only the owning tenant's id, which the caller authorizes against before reading the row with it",
    ),
    (
        "tenant_of_api_key",
        "a locator: returns only the owning tenant's id, which the caller authorizes against before reading the key with it",
    ),
    (
        "gateway_keys",
        "the gateway's snapshot holds every tenant's keys; each grant carries its own tenant",
    ),
    (
        "gateway_key_links",
        "the gateway's snapshot holds every tenant's keys and the subscriptions each covers; the snapshot keeps a link only within the key's own team",
    ),
    (
        "gateway_subscriptions",
        "the gateway's snapshot holds every tenant's subscriptions (the playground's grants); each carries its tenant",
    ),
    (
        "list_subscriptions",
        "SubscriptionQuery.tenant_id is None only for platform admins' cross-tenant approval queue",
    ),
    (
        "sum_rollups",
        "RollupQuery.tenant_id is None only for platform-wide readers (platform admins, as tollgate-usage decides) and for usage_tokens_since, which rebuilds every subscription's monthly counter (keyed by subscription)",
    ),
    (
        "scan_usage",
        "RecordScan.tenant_id is None only for platform-wide readers (platform admins, as tollgate-usage decides)",
    ),
    (
        "count_per_bucket",
        "RollupQuery.tenant_id is None only for platform-wide readers (adoption across tenants, as tollgate-usage decides)",
    ),
    (
        "subscriptions_created_per_bucket",
        "tenant_id is None only for platform-wide readers (adoption across tenants, as tollgate-usage decides)",
    ),
    (
        "plans_of_subscriptions",
        "the ids come from usage rollups already read within the caller's scope; only plan and model ids return",
    ),
    (
        "refresh_usage_statistics",
        "planner statistics of whole tables, which read or return no tenant's rows",
    ),
    (
        "prune_usage_records",
        "retention deletes records by age, whoever they belong to",
    ),
    (
        "list_audit",
        "AuditQuery.tenant_id is None only for platform admins",
    ),
    (
        "record_audit",
        "platform-wide events (sign-ins, platform admin changes) have no tenant",
    ),
    (
        "invitation_by_token_hash",
        "the invitation's secret token is the authority; the row names its tenant",
    ),
    (
        "tenants_of_user",
        "one user's own memberships across tenants (the tenant switcher)",
    ),
    (
        "sso_memberships_of_user",
        "one user's own group-granted memberships across tenants, for the sign-in role sync",
    ),
    (
        "list_tenants",
        "platform admins' list of tenants, with member and team counts",
    ),
    (
        "alert_keys_since",
        "the alert evaluator checks every subscription; it reads only the keys of alerts already fired",
    ),
    (
        "active_subscriptions_for_alerts",
        "the alert evaluator checks every tenant's active subscriptions; each row carries its tenant",
    ),
    (
        "list_alerts",
        "AlertQuery.tenant_id is None only for platform-wide readers (as tollgate-usage decides)",
    ),
    (
        "deliveries_of_alerts",
        "the deliveries of alerts that list_alerts read under the caller's scope",
    ),
    (
        "due_deliveries",
        "the alert dispatcher delivers every tenant's alerts; each row carries its tenant, and its alert is read within it",
    ),
    (
        "claim_delivery",
        "the alert dispatcher, on a row due_deliveries returned",
    ),
    (
        "finish_delivery",
        "the alert dispatcher, on a row it claimed",
    ),
];

struct PubFn {
    file: String,
    name: String,
    signature: String,
    body: String,
}

fn strip_comments(src: &str) -> String {
    src.lines()
        .map(|l| match l.find("//") {
            // `//` inside a string literal (a URL) is rare in the store; good enough for SQL and Rust here.
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text from `open` (an opening bracket) to its matching closing bracket.
fn balanced(src: &str, open: usize, (l, r): (char, char)) -> &str {
    let mut depth = 0usize;
    for (i, c) in src[open..].char_indices() {
        if c == l {
            depth += 1;
        } else if c == r {
            depth -= 1;
            if depth == 0 {
                return &src[open..=open + i];
            }
        }
    }
    &src[open..]
}

fn functions(file: &str, src: &str) -> (Vec<PubFn>, BTreeMap<String, String>) {
    let mut pubs = Vec::new();
    // Module-level helpers a public function may use: consts holding SQL, private fns building it.
    let mut helpers = BTreeMap::new();
    let mut at = 0;
    while let Some(i) = src[at..].find("fn ") {
        let start = at + i;
        at = start + 3;
        let before = &src[..start];
        let line_start = before.rfind('\n').map_or(0, |n| n + 1);
        let prefix = src[line_start..start].trim();
        if !(prefix.is_empty() || prefix.ends_with("pub") || prefix.ends_with("async")) {
            continue;
        }
        let name: String = src[start + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let Some(paren) = src[start..].find('(').map(|p| start + p) else {
            continue;
        };
        let signature = balanced(src, paren, ('(', ')')).to_string();
        let Some(brace) = src[paren..].find('{').map(|p| paren + p) else {
            continue;
        };
        let body = balanced(src, brace, ('{', '}')).to_string();
        if prefix.starts_with("pub") {
            pubs.push(PubFn {
                file: file.to_string(),
                name,
                signature,
                body,
            });
        } else {
            helpers.insert(name, body);
        }
    }
    let mut c = 0;
    while let Some(i) = src[c..].find("const ") {
        let start = c + i;
        c = start + 6;
        let name: String = src[start + 6..]
            .chars()
            .take_while(|ch| ch.is_alphanumeric() || *ch == '_')
            .collect();
        let end = src[start..].find(';').map_or(src.len(), |e| start + e);
        helpers.insert(name, src[start..end].to_string());
    }
    (pubs, helpers)
}

fn mentions_word(text: &str, word: &str) -> bool {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

/// Struct names whose definition has a non-optional `tenant_id` field.
fn tenant_carrying_structs(sources: &[(String, String)]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (_, src) in sources {
        let mut at = 0;
        while let Some(i) = src[at..].find("pub struct ") {
            let start = at + i + "pub struct ".len();
            at = start;
            let name: String = src[start..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let Some(brace) = src[start..].find('{').map(|b| start + b) else {
                continue;
            };
            let semi = src[start..].find(';').map_or(usize::MAX, |s| start + s);
            if semi < brace {
                continue;
            }
            let body = balanced(src, brace, ('{', '}'));
            if body
                .lines()
                .any(|l| l.contains("tenant_id:") && !l.contains("Option<"))
            {
                out.insert(name);
            }
        }
    }
    out
}

fn takes_tenant(signature: &str, carriers: &BTreeSet<String>) -> bool {
    signature.split(',').any(|param| {
        let Some((name, ty)) = param.split_once(':') else {
            return false;
        };
        let name = name.trim().trim_start_matches('(');
        (name == "tenant_id" && ty.contains("str") && !ty.contains("Option"))
            || carriers.iter().any(|c| mentions_word(ty, c))
    })
}

/// Every source file of the store, in sub-folders too (`usage/rollups.rs`), named by its path under `src/`.
fn store_sources() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let name = path
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .to_string();
            // The test helpers make and drop whole databases; they are not part of the store's API.
            if path.extension().is_some_and(|e| e == "rs") && name != "testing.rs" {
                out.push((
                    name,
                    strip_comments(&std::fs::read_to_string(&path).unwrap()),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_store_function_on_a_tenant_owned_table_takes_the_tenant() {
    let sources = store_sources();
    let carriers = tenant_carrying_structs(&sources);
    let allowed: BTreeMap<&str, &str> = CROSS_TENANT.iter().copied().collect();
    let mut offenders = Vec::new();
    let mut listing = Vec::new();
    let mut seen_allowed = BTreeSet::new();
    for (file, src) in &sources {
        let (pubs, helpers) = functions(file, src);
        for f in pubs {
            let mut text = f.body.clone();
            for (helper, body) in &helpers {
                if mentions_word(&f.body, helper) {
                    text.push_str(body);
                }
            }
            let tables: Vec<&str> = TENANT_OWNED
                .iter()
                .copied()
                .filter(|t| mentions_word(&text, t))
                .collect();
            if tables.is_empty() {
                continue;
            }
            let verdict = if takes_tenant(&f.signature, &carriers) {
                "takes the tenant".to_string()
            } else if let Some(why) = allowed.get(f.name.as_str()) {
                seen_allowed.insert(f.name.clone());
                format!("cross-tenant: {why}")
            } else {
                offenders.push(format!("{}::{}{}", f.file, f.name, f.signature));
                "MISSING THE TENANT".to_string()
            };
            listing.push(format!(
                "{:<16} {:<28} [{}] {verdict}",
                f.file,
                f.name,
                tables.join(", ")
            ));
        }
    }
    println!("{}", listing.join("\n"));
    assert!(
        listing.len() > 20,
        "the scan found too few functions: {listing:#?}"
    );
    assert!(
        offenders.is_empty(),
        "store functions on tenant-owned tables must take the tenant (or be listed in CROSS_TENANT with a reason):\n{}",
        offenders.join("\n")
    );
    let stale: Vec<&str> = allowed
        .keys()
        .copied()
        .filter(|k| !seen_allowed.contains(*k))
        .collect();
    assert!(
        stale.is_empty(),
        "CROSS_TENANT lists functions that no longer touch tenant-owned tables: {stale:?}"
    );
}

#[test]
fn the_scan_catches_a_function_without_the_tenant() {
    // The scanner itself, on a function as the old store had it.
    let src = strip_comments(
        r#"
const KEY_SELECT: &str = "SELECT k.id FROM api_keys k";
impl Store {
    pub async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRow>> {
        Ok(sqlx::query_as(&format!("{KEY_SELECT} WHERE k.id = $1")).bind(id).fetch_optional(&self.pool).await?)
    }
    pub async fn api_key_in(&self, tenant_id: &str, id: &str) -> Result<Option<ApiKeyRow>> {
        Ok(sqlx::query_as(&format!("{KEY_SELECT} WHERE k.tenant_id = $1 AND k.id = $2")).fetch_optional(&self.pool).await?)
    }
}
"#,
    );
    let (pubs, helpers) = functions("api_keys.rs", &src);
    assert_eq!(pubs.len(), 2);
    let carriers = BTreeSet::new();
    for f in &pubs {
        let touches = helpers
            .iter()
            .any(|(h, body)| mentions_word(&f.body, h) && mentions_word(body, "api_keys"));
        assert!(touches, "{} reads api_keys through KEY_SELECT", f.name);
    }
    assert!(!takes_tenant(&pubs[0].signature, &carriers));
    assert!(takes_tenant(&pubs[1].signature, &carriers));
}

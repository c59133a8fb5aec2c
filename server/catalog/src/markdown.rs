//! Model descriptions are Markdown written by platform admins and shown to every user, so they are rendered
//! with raw HTML escaped and only safe link schemes kept: a description can format text, never run script.

use pulldown_cmark::{html, CowStr, Event, Options, Parser, Tag};

pub fn to_safe_html(markdown: &str) -> String {
    let parser = Parser::new_ext(
        markdown,
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH,
    )
    .map(|event| match event {
        // Raw HTML is shown as text, not interpreted.
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Image {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        other => other,
    });
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut out, parser);
    out
}

fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    let lower = url.trim().to_ascii_lowercase();
    let has_scheme = lower.split_once(':').is_some_and(|(scheme, _)| {
        !scheme.contains('/') && !scheme.contains('?') && !scheme.contains('#')
    });
    if !has_scheme
        || lower.starts_with("https:")
        || lower.starts_with("http:")
        || lower.starts_with("mailto:")
    {
        url
    } else {
        CowStr::Borrowed("#")
    }
}

#[cfg(test)]
mod tests {
    use super::to_safe_html;

    #[test]
    fn formatting_survives() {
        let html = to_safe_html("**Fast** model.\n\n- one\n- two\n\n[docs](https://example.com/x)");
        assert!(html.contains("<strong>Fast</strong>"));
        assert!(html.contains("<li>one</li>"));
        assert!(html.contains(r#"<a href="https://example.com/x">docs</a>"#));
    }

    #[test]
    fn script_never_survives() {
        let html = to_safe_html("<script>alert(1)</script>\n\nhi <img src=x onerror=alert(1)> [x](javascript:alert(1)) [y](JaVaScRiPt:alert(2)) ![i](data:text/html,boo)");
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(!html.to_ascii_lowercase().contains("javascript:"), "{html}");
        assert!(!html.contains("data:text"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }

    #[test]
    fn relative_links_are_kept() {
        assert!(to_safe_html("[m](/catalog/llama)").contains(r#"href="/catalog/llama""#));
    }
}

//! Charts drawn on the server as SVG with plotters (its SVG backend only: no fonts, bitmaps or system libraries),
//! so the usage page shows them without a line of script. Numbers beside them are in the page's tables.

use plotters::prelude::*;
use tollgate_domain::{
    time::Millis,
    usage::{rollup::Grain, UsageGroup},
};

const WIDTH: u32 = 880;
const HEIGHT: u32 = 260;

/// "12.3k", "4.5M": short axis labels.
fn compact(v: u64) -> String {
    match v {
        0..=9_999 => v.to_string(),
        10_000..=999_999 => format!("{:.1}k", v as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.1}M", v as f64 / 1e6),
        _ => format!("{:.1}G", v as f64 / 1e9),
    }
}

/// A bucket's label: the time of day for minutes and hours, the date for days (UTC).
fn label(at: i64, grain: Grain) -> String {
    let text = Millis(at).format_utc();
    match grain {
        Grain::Day => Millis(at).format_date(),
        Grain::Hour | Grain::Minute => text.split(' ').nth(1).map(str::to_string).unwrap_or(text),
    }
}

/// Tokens per bucket over `[from, until)` as bars, an SVG document; empty when drawing failed (logged).
pub fn tokens_per_bucket(series: &[UsageGroup], grain: Grain, from: i64, until: i64) -> String {
    match draw(series, grain, from, until) {
        Ok(svg) => svg,
        Err(e) => {
            tracing::warn!(error = %e, "could not draw the usage chart");
            String::new()
        }
    }
}

fn draw(
    series: &[UsageGroup],
    grain: Grain,
    from: i64,
    until: i64,
) -> Result<String, Box<dyn std::error::Error>> {
    let start = grain.floor(from);
    let end = grain.ceil(until).max(start + grain.millis());
    let top = series
        .iter()
        .map(|g| g.figures.tokens())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(64)
            .build_cartesian_2d(start..end, 0u64..top + top / 10 + 1)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(8)
            .x_label_formatter(&|x| label(*x, grain))
            .y_labels(5)
            .y_label_formatter(&|y| compact(*y))
            .y_desc("tokens")
            .draw()?;
        let bar = (grain.millis() * 8 / 10).max(1);
        chart.draw_series(series.iter().filter_map(|g| {
            let at = g.bucket?.0;
            Some(Rectangle::new(
                [(at, 0), (at + bar, g.figures.tokens())],
                RGBColor(79, 70, 229).filled(),
            ))
        }))?;
        root.present()?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_domain::usage::UsageFigures;

    fn point(at: i64, tokens: u64) -> UsageGroup {
        UsageGroup {
            bucket: Some(Millis(at)),
            value: String::new(),
            figures: UsageFigures {
                prompt_tokens: tokens,
                ..UsageFigures::default()
            },
        }
    }

    #[test]
    fn a_chart_is_an_svg_with_one_bar_per_bucket_and_labelled_axes() {
        let hour = 3_600_000;
        let series = [point(0, 10), point(hour, 2_000), point(3 * hour, 15_000)];
        let svg = tokens_per_bucket(&series, Grain::Hour, 0, 6 * hour);
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("tokens"), "the y axis is named");
        assert!(
            svg.contains("00:00"),
            "hours are labelled by time of day: {svg}"
        );
        // Three bars in the bar colour, nothing for the empty hours.
        assert_eq!(svg.matches("#4F46E5").count(), 3, "{svg}");
        let empty = tokens_per_bucket(&[], Grain::Day, 0, 7 * 24 * hour);
        assert!(empty.starts_with("<svg") && !empty.contains("#4F46E5"));
    }

    #[test]
    fn axis_numbers_are_short() {
        assert_eq!(compact(950), "950");
        assert_eq!(compact(12_345), "12.3k");
        assert_eq!(compact(4_500_000), "4.5M");
    }
}

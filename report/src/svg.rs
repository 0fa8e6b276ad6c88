//! Small self-contained SVG charts for the tearsheet: lines over dates and bars by category.

use std::fmt::Write;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 36.0;

/// A named series of (x label, value) points drawn as a line or bars.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend name.
    pub name: String,
    /// CSS colour.
    pub color: &'static str,
    /// Values; `None` leaves a gap.
    pub values: Vec<Option<f64>>,
    /// Draw as bars instead of a line.
    pub bars: bool,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn nice_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (-1.0, 1.0);
    }
    lo = lo.min(0.0);
    hi = hi.max(0.0);
    if hi - lo < 1e-12 {
        hi = lo + 1.0;
    }
    let pad = (hi - lo) * 0.05;
    (lo - pad, hi + pad)
}

/// A chart with x labels, a title and series sharing one y axis; values shown as percentages
/// when `percent`.
pub fn chart(title: &str, labels: &[String], series: &[Series], percent: bool) -> String {
    let n = labels.len().max(1);
    let (lo, hi) = nice_range(
        series
            .iter()
            .flat_map(|s| s.values.iter().flatten().copied()),
    );
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |i: usize| LEFT + plot_w * (i as f64 + 0.5) / n as f64;
    let y = |v: f64| TOP + plot_h * (hi - v) / (hi - lo);
    let fmt = |v: f64| {
        if percent {
            format!("{:.1}%", v * 100.0)
        } else {
            format!("{v:.3}")
        }
    };
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{t}"><rect width="100%" height="100%" fill="white"/><text x="{LEFT}" y="18" font-family="sans-serif" font-size="13" font-weight="bold">{t}</text>"#,
        t = escape(title)
    );
    // Y grid: five ticks.
    for k in 0..=4 {
        let v = lo + (hi - lo) * f64::from(k) / 4.0;
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{x2}" y1="{yy:.1}" y2="{yy:.1}" stroke="#e5e5e5"/><text x="{tx}" y="{ty:.1}" font-family="sans-serif" font-size="10" text-anchor="end">{label}</text>"##,
            x2 = WIDTH - RIGHT,
            yy = y(v),
            tx = LEFT - 4.0,
            ty = y(v) + 3.0,
            label = fmt(v)
        );
    }
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" x2="{x2}" y1="{z:.1}" y2="{z:.1}" stroke="#888"/>"##,
        x2 = WIDTH - RIGHT,
        z = y(0.0)
    );
    // X labels: at most eight.
    let step = n.div_ceil(8).max(1);
    for (i, label) in labels.iter().enumerate().step_by(step) {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{}" font-family="sans-serif" font-size="10" text-anchor="middle">{}</text>"#,
            x(i),
            HEIGHT - BOTTOM + 14.0,
            escape(label)
        );
    }
    let bar_series = series.iter().filter(|s| s.bars).count().max(1);
    let mut bar_index = 0;
    for s in series {
        if s.bars {
            let width = plot_w / n as f64 * 0.8 / bar_series as f64;
            for (i, v) in s.values.iter().enumerate() {
                let Some(v) = v.filter(|v| v.is_finite()) else {
                    continue;
                };
                let left = x(i) - plot_w / n as f64 * 0.4 + width * bar_index as f64;
                let (top, bottom) = (y(v.max(0.0)), y(v.min(0.0)));
                let _ = write!(
                    out,
                    r#"<rect x="{left:.1}" y="{top:.1}" width="{width:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                    (bottom - top).max(0.5),
                    s.color,
                    escape(&labels[i]),
                    fmt(v)
                );
            }
            bar_index += 1;
        } else {
            let mut path = String::new();
            let mut pen_down = false;
            for (i, v) in s.values.iter().enumerate() {
                match v.filter(|v| v.is_finite()) {
                    Some(v) => {
                        let _ = write!(
                            path,
                            "{}{:.1},{:.1} ",
                            if pen_down { "L" } else { "M" },
                            x(i),
                            y(v)
                        );
                        pen_down = true;
                    }
                    None => pen_down = false,
                }
            }
            let _ = write!(
                out,
                r#"<path d="{}" fill="none" stroke="{}" stroke-width="1.8"/>"#,
                path.trim_end(),
                s.color
            );
        }
    }
    // Legend.
    for (k, s) in series.iter().enumerate() {
        let lx = WIDTH - RIGHT - 170.0;
        let ly = TOP + 4.0 + 14.0 * k as f64;
        let _ = write!(
            out,
            r#"<rect x="{lx}" y="{ly}" width="10" height="10" fill="{c}"/><text x="{tx}" y="{ty}" font-family="sans-serif" font-size="11">{name}</text>"#,
            c = s.color,
            tx = lx + 14.0,
            ty = ly + 9.0,
            name = escape(&s.name)
        );
    }
    out.push_str("</svg>");
    out
}

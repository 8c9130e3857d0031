//! The latency plot, hand-written SVG: one percentile curve per stage on a log-scale latency
//! axis (x) against "nines" (y: 0, 90 %, 99 %, 99.9 %, ...), and below it the resident memory
//! over the orders verified.

use std::fmt::Write as _;

/// One curve: (latency µs, fraction of samples at or below it, in 0..1).
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

const COLORS: [&str; 11] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#000000",
];
const W: f64 = 1000.0;
const LEFT: f64 = 70.0;
const PLOT_W: f64 = 600.0;
const TOP: f64 = 50.0;
const LAT_H: f64 = 380.0;
const MEM_TOP: f64 = TOP + LAT_H + 70.0;
const MEM_H: f64 = 180.0;
const H: f64 = MEM_TOP + MEM_H + 60.0;

/// -log10(1 - p): 0 at 0 %, 1 at 90 %, 2 at 99 %, 3 at 99.9 %.
pub fn nines(p: f64) -> f64 {
    -(1.0 - p.clamp(0.0, 1.0 - 1e-9)).log10()
}

/// The percentile curve of sorted samples, evenly spaced in nines, ending at the maximum.
pub fn curve(sorted: &[u64]) -> Vec<(f64, f64)> {
    if sorted.is_empty() {
        return Vec::new();
    }
    let n = sorted.len() as f64;
    let top = n.log10().max(0.0);
    const STEPS: usize = 300;
    let mut points = Vec::with_capacity(STEPS + 2);
    for j in 0..=STEPS {
        let p = 1.0 - 10f64.powf(-top * j as f64 / STEPS as f64);
        points.push((crate::stats::percentile(sorted, p) as f64, p));
    }
    points.push((sorted[sorted.len() - 1] as f64, 1.0 - 0.5 / n));
    points
}

/// XML text escaping.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn fmt_us(us: f64) -> String {
    if us >= 1e6 {
        format!("{} s", us / 1e6)
    } else if us >= 1e3 {
        format!("{} ms", us / 1e3)
    } else {
        format!("{us} µs")
    }
}

fn nines_label(y: u32) -> String {
    match y {
        0 => "0 %".into(),
        1 => "90 %".into(),
        n => format!("99.{} %", "9".repeat(n as usize - 2)).replace("99. %", "99 %"),
    }
}

/// The whole picture.
pub fn render(title: &str, series: &[Series], mem: &[(f64, f64)]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(s, r#"<text x="{LEFT}" y="24" font-size="15" font-weight="bold">{}</text>"#, escape(title));

    // Latency panel.
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0.max(1.0)));
    let (lo, hi) = xs.fold((f64::MAX, 1.0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
    let lo_dec = if lo == f64::MAX { 0.0 } else { lo.log10().floor() };
    let hi_dec = hi.log10().ceil().max(lo_dec + 1.0);
    let top_nines = series.iter().flat_map(|s| s.points.iter().map(|p| nines(p.1))).fold(3.0f64, f64::max).ceil();
    let x_of = |us: f64| LEFT + (us.max(1.0).log10() - lo_dec) / (hi_dec - lo_dec) * PLOT_W;
    let y_of = |p: f64| TOP + LAT_H - nines(p) / top_nines * LAT_H;
    let _ =
        writeln!(s, r##"<rect x="{LEFT}" y="{TOP}" width="{PLOT_W}" height="{LAT_H}" fill="none" stroke="#444"/>"##);
    for d in lo_dec as i32..=hi_dec as i32 {
        let x = x_of(10f64.powi(d));
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + LAT_H,
            TOP + LAT_H + 16.0,
            escape(&fmt_us(10f64.powi(d)))
        );
    }
    for n in 0..=top_nines as u32 {
        let y = TOP + LAT_H - f64::from(n) / top_nines * LAT_H;
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + PLOT_W,
            LEFT - 6.0,
            y + 4.0,
            escape(&nines_label(n))
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">latency (log scale)</text>"#,
        LEFT + PLOT_W / 2.0,
        TOP + LAT_H + 34.0
    );
    let _ = writeln!(
        s,
        r#"<text x="16" y="{:.1}" transform="rotate(-90 16 {:.1})" text-anchor="middle">percentile (nines scale)</text>"#,
        TOP + LAT_H / 2.0,
        TOP + LAT_H / 2.0
    );
    for (i, series) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<String> =
            series.points.iter().map(|&(us, p)| format!("{:.1},{:.1}", x_of(us), y_of(p))).collect();
        let width = if series.name.starts_with("TOTAL") || series.name.starts_with("BASELINE") { 2.5 } else { 1.5 };
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="{width}" points="{}"/>"#,
            points.join(" ")
        );
        let ly = TOP + 10.0 + i as f64 * 20.0;
        let lx = LEFT + PLOT_W + 20.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{:.1}" y2="{ly}" stroke="{color}" stroke-width="{width}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 24.0,
            lx + 30.0,
            ly + 4.0,
            escape(&series.name)
        );
    }

    // Memory panel.
    let max_orders = mem.iter().map(|m| m.0).fold(1.0f64, f64::max);
    let max_mb = (mem.iter().map(|m| m.1).fold(30.0f64, f64::max) * 1.1).ceil();
    let mx = |o: f64| LEFT + o / max_orders * PLOT_W;
    let my = |mb: f64| MEM_TOP + MEM_H - mb / max_mb * MEM_H;
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{MEM_TOP}" width="{PLOT_W}" height="{MEM_H}" fill="none" stroke="#444"/>"##
    );
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="{:.1}" font-weight="bold">resident memory (VmRSS) over orders verified</text>"#,
        MEM_TOP - 10.0
    );
    for k in 0..=4 {
        let mb = max_mb * f64::from(k) / 4.0;
        let o = max_orders * f64::from(k) / 4.0;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{mb:.0} MB</text><text x="{:.1}" y="{:.1}" text-anchor="middle">{o:.0}</text>"#,
            LEFT - 6.0,
            my(mb) + 4.0,
            mx(o),
            MEM_TOP + MEM_H + 16.0
        );
    }
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#d62728" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}" fill="#d62728">target 30 MB</text>"##,
        LEFT + PLOT_W,
        LEFT + PLOT_W + 6.0,
        my(30.0) + 4.0,
        y = my(30.0)
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">orders verified</text>"#,
        LEFT + PLOT_W / 2.0,
        MEM_TOP + MEM_H + 34.0
    );
    if !mem.is_empty() {
        let points: Vec<String> = mem.iter().map(|&(o, mb)| format!("{:.1},{:.1}", mx(o), my(mb))).collect();
        let _ = writeln!(
            s,
            r##"<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{}"/>"##,
            points.join(" ")
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every tag closed in order, attributes quoted, no stray `<` or `&`: well-formed enough
    /// for any XML parser (we carry no XML crate just for the test).
    fn assert_well_formed(svg: &str) {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            let text = &rest[..start];
            assert!(!text.contains('>'), "stray > in text {text:?}");
            for (i, _) in text.match_indices('&') {
                let entity = &text[i..];
                assert!(
                    ["&amp;", "&lt;", "&gt;", "&quot;"].iter().any(|e| entity.starts_with(e)),
                    "bare & in {text:?}"
                );
            }
            let end = rest[start..].find('>').expect("unclosed tag") + start;
            let tag = &rest[start + 1..end];
            assert!(!tag.contains('<'), "< inside tag {tag:?}");
            assert_eq!(tag.matches('"').count() % 2, 0, "unbalanced quotes in {tag:?}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop().as_deref(), Some(name.trim()), "mismatched </{name}>");
            } else if !tag.ends_with('/') {
                stack.push(tag.split_whitespace().next().unwrap().to_string());
            }
            rest = &rest[end + 1..];
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
        assert!(rest.trim().is_empty());
    }

    #[test]
    fn the_svg_is_well_formed() {
        let sorted: Vec<u64> = (1..=10_000).collect();
        let series = vec![
            Series { name: "TOTAL <line → fill> & more".into(), points: curve(&sorted) },
            Series { name: "stop-loss".into(), points: vec![(0.0, 0.0), (5.0, 0.5), (12.0, 0.99)] },
        ];
        let svg = render("title \"quoted\"", &series, &[(0.0, 8.0), (5000.0, 9.5), (10_000.0, 9.6)]);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert!(svg.contains("&lt;line → fill&gt; &amp; more"));
        assert_well_formed(&svg);
        assert_well_formed(&render("empty", &[], &[]));
    }

    #[test]
    fn curves_run_from_min_to_max_in_nines() {
        let sorted: Vec<u64> = (1..=1000).collect();
        let c = curve(&sorted);
        assert_eq!(c.first().unwrap().0, 1.0);
        assert_eq!(c.last().unwrap().0, 1000.0);
        assert!(c.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        assert!((nines(0.99) - 2.0).abs() < 1e-9);
        assert_eq!(nines_label(0), "0 %");
        assert_eq!(nines_label(2), "99 %");
        assert_eq!(nines_label(3), "99.9 %");
        assert_eq!(fmt_us(1000.0), "1 ms");
        assert_eq!(fmt_us(10.0), "10 µs");
    }
}

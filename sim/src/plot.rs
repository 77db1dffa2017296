//! SVG plots drawn with `plotters` (SVG backend only). Without a font backend (which would need
//! system fonts or a bundled TTF) plotters cannot measure text, so it draws lines, axes and grid
//! only; [`annotate`] then adds plain SVG `<text>` (title, axis names, tick values, legend) at
//! positions computed from the known plot area. The viewer renders that text with any font.

use std::path::Path;

use plotters::prelude::*;

use crate::report::Series;

const W: u32 = 800;
const H: u32 = 500;
const LEFT: u32 = 80;
const RIGHT: u32 = 20;
const TOP: u32 = 40;
const BOTTOM: u32 = 50;

/// Text of one plot.
struct Labels<'a> {
    title: &'a str,
    x: &'a str,
    y: &'a str,
    x_max: f64,
    y_max: f64,
    legend: &'a [(&'a str, &'a str)],
}

fn fmt_num(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Adds title, axis names, five tick values per axis and a legend as SVG text.
fn annotate(path: &Path, l: &Labels<'_>) -> Result<(), String> {
    let svg = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let (x0, x1) = (LEFT as f64, (W - RIGHT) as f64);
    let (y0, y1) = (TOP as f64, (H - BOTTOM) as f64);
    let t = |x: f64, y: f64, anchor: &str, s: &str| {
        format!(
            "<text x=\"{x:.0}\" y=\"{y:.0}\" font-family=\"sans-serif\" font-size=\"13\" text-anchor=\"{anchor}\">{s}</text>\n"
        )
    };
    let mut add = t(W as f64 / 2.0, 24.0, "middle", l.title);
    add += &t((x0 + x1) / 2.0, H as f64 - 10.0, "middle", l.x);
    add += &format!(
        "<text x=\"16\" y=\"{:.0}\" font-family=\"sans-serif\" font-size=\"13\" text-anchor=\"middle\" transform=\"rotate(-90 16 {:.0})\">{}</text>\n",
        (y0 + y1) / 2.0,
        (y0 + y1) / 2.0,
        l.y
    );
    for k in 0..=4 {
        let f = f64::from(k) / 4.0;
        add += &t(
            x0 + f * (x1 - x0),
            y1 + 18.0,
            "middle",
            &fmt_num(f * l.x_max),
        );
        add += &t(
            x0 - 6.0,
            y1 - f * (y1 - y0) + 4.0,
            "end",
            &fmt_num(f * l.y_max),
        );
    }
    for (i, (color, name)) in l.legend.iter().enumerate() {
        let y = y0 + 16.0 + 18.0 * i as f64;
        add += &format!(
            "<rect x=\"{:.0}\" y=\"{:.0}\" width=\"14\" height=\"4\" fill=\"{color}\"/>\n",
            x0 + 12.0,
            y - 5.0
        );
        add += &t(x0 + 32.0, y, "start", name);
    }
    let out = match svg.rfind("</svg>") {
        Some(i) => format!("{}{add}{}", &svg[..i], &svg[i..]),
        None => svg + &add,
    };
    std::fs::write(path, out).map_err(|e| e.to_string())
}

fn cdf(path: &Path, series: &[(&[f64], RGBColor)]) -> Result<(), String> {
    let max_x = series
        .iter()
        .filter_map(|(v, _)| v.last().copied())
        .fold(1.0_f64, f64::max);
    let root = SVGBackend::new(path, (W, H)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .margin_left(LEFT)
        .margin_right(RIGHT)
        .margin_top(TOP)
        .margin_bottom(BOTTOM)
        .build_cartesian_2d(0.0..max_x * 1.02, 0.0..1.0)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_labels(0)
        .draw()
        .map_err(|e| e.to_string())?;
    for (v, color) in series {
        let n = v.len().max(1) as f64;
        let pts = v.iter().enumerate().map(|(i, &x)| (x, (i + 1) as f64 / n));
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

fn bytes(path: &Path, pts: &[(f64, f64, f64)]) -> Result<(), String> {
    let max_x = pts.last().map_or(1.0, |p| p.0).max(1e-3);
    let max_y = pts.iter().map(|p| p.2).fold(1.0_f64, f64::max);
    let root = SVGBackend::new(path, (W, H)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .margin_left(LEFT)
        .margin_right(RIGHT)
        .margin_top(TOP)
        .margin_bottom(BOTTOM)
        .build_cartesian_2d(0.0..max_x, 0.0..max_y * 1.05)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_labels(0)
        .y_labels(0)
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(LineSeries::new(
            pts.iter().map(|p| (p.0, p.1)),
            BLUE.stroke_width(2),
        ))
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(LineSeries::new(
            pts.iter().map(|p| (p.0, p.2)),
            RED.stroke_width(1),
        ))
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// Writes `convergence_cdf.svg` (blue: per-delivery latency CDF, red: per-event convergence
/// CDF; x = ms from 0 to the largest value, y = fraction 0..1) and `bytes_per_node.svg` (x =
/// simulated seconds, y = cumulative bytes sent: blue mean per node, red the busiest node).
pub fn write_plots(dir: &Path, s: &Series) -> Result<(), String> {
    let p = dir.join("convergence_cdf.svg");
    cdf(&p, &[(&s.latencies_ms, BLUE), (&s.event_ms, RED)])?;
    let x_max = s
        .latencies_ms
        .last()
        .copied()
        .unwrap_or(0.0)
        .max(s.event_ms.last().copied().unwrap_or(0.0))
        .max(1.0)
        * 1.02;
    annotate(
        &p,
        &Labels {
            title: "Convergence CDF",
            x: "ms after the event was written",
            y: "fraction",
            x_max,
            y_max: 1.0,
            legend: &[
                ("#0000FF", "per delivery (node, event)"),
                ("#FF0000", "per event (last node)"),
            ],
        },
    )?;
    let p = dir.join("bytes_per_node.svg");
    bytes(&p, &s.bytes)?;
    annotate(
        &p,
        &Labels {
            title: "Bytes sent per node (cumulative)",
            x: "simulated seconds",
            y: "bytes",
            x_max: s.bytes.last().map_or(1.0, |b| b.0).max(1e-3),
            y_max: s.bytes.iter().map(|b| b.2).fold(1.0_f64, f64::max) * 1.05,
            legend: &[("#0000FF", "mean per node"), ("#FF0000", "busiest node")],
        },
    )
}

//! The index plan's frontier, per table: for each candidate setting the
//! planner measured (over-fetch 1), its predicted build time and index
//! size at the table's size against its predicted recall@10, the pick
//! marked, libSQL's defaults marked, a recall that is only an upper
//! bound labelled "(at most)", and — where a run measured it — the
//! recall the built index really had. Read from the JSON reports of
//! `migrate_embeddings --dry-run --format json` (or `--execute`).

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use plotters::prelude::*;
use serde_json::Value;

/// One candidate, as drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct Dot {
    pub label: String,
    pub recall: f64,
    pub build_seconds: f64,
    pub index_bytes: f64,
    pub picked: bool,
    pub default: bool,
}

/// One panel: a table of one report.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub title: String,
    pub target_recall: f64,
    pub dots: Vec<Dot>,
    /// recall@10 measured on the built index, if any: the measurement
    /// after the build, else the verification's search check.
    pub measured_recall: Option<f64>,
}

fn short(options: &str) -> String {
    if options.is_empty() {
        return "default".into();
    }
    match memory_storage_turso::schema::ScanBits::from_options(options) {
        Some(memory_storage_turso::schema::ScanBits::Float8) => return "scan8".into(),
        Some(memory_storage_turso::schema::ScanBits::Float1Bit) => return "scan1".into(),
        None => {}
    }
    options
        .replace("compress_neighbors=", "")
        .replace("max_neighbors=", "mn")
        .replace("search_l=", "sl")
        .replace(',', " ")
}

/// The panels of one report (`name` prefixes their titles): each table
/// the plan measured candidates for.
pub fn panels(name: &str, report: &Value) -> Result<Vec<Panel>> {
    let plan = report
        .get("index_plan")
        .ok_or_else(|| anyhow!("the report has no index_plan"))?;
    let target_recall = plan["target_recall"].as_f64().unwrap_or(0.95);
    // The held-out measurement made right after the build (64 rows left
    // out of both rankings) wins over the verification's search check
    // (rows that are their own nearest neighbour), where a report has both.
    let of = |key: &str, field: &str| -> Vec<(String, f64)> {
        report[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| Some((c["table"].as_str()?.to_string(), c[field].as_f64()?)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let measured: Vec<(String, f64)> = of("built_recall", "measured_recall")
        .into_iter()
        .chain(of("search_checks", "recall"))
        .collect();
    let mut out = Vec::new();
    for t in plan["tables"].as_array().into_iter().flatten() {
        let table = t["table"].as_str().unwrap_or("?").to_string();
        let picked = t["pick"]["candidate"].as_u64().map(|c| c as usize);
        let default = t["default_candidate"].as_u64().map(|c| c as usize);
        let dots: Vec<Dot> = t["candidates"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .filter(|(i, c)| c["overfetch"].as_u64() == Some(1) || Some(*i) == picked)
            .map(|(i, c)| Dot {
                // A recall from a part of the neighbourhoods is an upper
                // bound (`recall_at_most`): drawn where it may be at most.
                label: format!(
                    "{}{}",
                    short(c["options"].as_str().unwrap_or("")),
                    if c["recall_at_most"].as_bool() == Some(true) {
                        " (at most)"
                    } else {
                        ""
                    }
                ),
                recall: c["predicted"]["recall"].as_f64().unwrap_or(0.0),
                build_seconds: c["predicted"]["build_seconds"].as_f64().unwrap_or(0.0),
                index_bytes: c["predicted"]["index_bytes"].as_f64().unwrap_or(0.0),
                picked: Some(i) == picked,
                default: Some(i) == default,
            })
            .collect();
        if dots.is_empty() {
            continue;
        }
        out.push(Panel {
            title: format!("{name}: {table}, {} rows", t["rows"]),
            target_recall,
            dots,
            measured_recall: measured.iter().find(|(n, _)| *n == table).map(|m| m.1),
        });
    }
    Ok(out)
}

/// Draws `panels` (one row each: build time, then index size, against
/// recall) to the PNG `out`.
pub fn draw(panels: &[Panel], out: &Path) -> Result<()> {
    if panels.is_empty() {
        bail!("no table of the reports has measured candidates");
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = crate::plot::find_font(
        Path::new(crate::plot::PREFERRED_FONT),
        Path::new(crate::plot::FONT_ROOT),
    )
    .is_some_and(|f| crate::plot::register(&f));
    render(panels, out, text)
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("drawing {}", out.display()))
}

/// A vertical axis: its name and the value of a dot on it.
type Axis = (&'static str, fn(&Dot) -> f64);

fn render(
    panels: &[Panel],
    out: &Path,
    text: bool,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::new(out, (1200, 380 * panels.len() as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let rows = root.split_evenly((panels.len(), 2));
    for (p, panel) in panels.iter().enumerate() {
        let axes: [Axis; 2] = [
            ("build, s", |d| d.build_seconds.max(1e-3)),
            ("index, MiB", |d| (d.index_bytes / 1048576.0).max(1e-3)),
        ];
        for (a, (name, y)) in axes.iter().enumerate() {
            let area = &rows[p * 2 + a];
            let lo = panel.dots.iter().map(y).fold(f64::INFINITY, f64::min) / 1.5;
            let hi = panel.dots.iter().map(y).fold(0.0, f64::max) * 1.5;
            let x_lo = panel
                .dots
                .iter()
                .map(|d| d.recall)
                .chain(panel.measured_recall)
                .fold(panel.target_recall, f64::min)
                - 0.05;
            let mut builder = ChartBuilder::on(area);
            builder.margin(12);
            if text {
                builder
                    .caption(format!("{} — {name}", panel.title), ("sans-serif", 17))
                    .x_label_area_size(34)
                    .y_label_area_size(60);
            }
            let mut chart = builder.build_cartesian_2d(x_lo.max(0.0)..1.1, (lo..hi).log_scale())?;
            let mut mesh = chart.configure_mesh();
            if text {
                mesh.x_desc("predicted recall@10 at the table's size")
                    .y_desc(*name);
            } else {
                mesh.disable_x_mesh().disable_y_mesh();
            }
            mesh.draw()?;
            chart.draw_series(LineSeries::new(
                [(panel.target_recall, lo), (panel.target_recall, hi)],
                RED.mix(0.5),
            ))?;
            for d in &panel.dots {
                let at = (d.recall, y(d));
                let color = if d.picked {
                    RED
                } else if d.default {
                    BLUE
                } else {
                    BLACK
                };
                let size = if d.picked { 8 } else { 5 };
                let label = match (text, d.picked, d.default) {
                    (false, ..) => String::new(),
                    (_, true, _) => format!("{} (pick)", d.label),
                    (_, _, true) => format!("{} (libSQL default)", d.label),
                    _ => d.label.clone(),
                };
                let font = ("sans-serif", 13).into_font().color(&color);
                chart.draw_series(std::iter::once(
                    EmptyElement::at(at)
                        + Circle::new((0, 0), size, color.filled())
                        + plotters::element::Text::new(label, (10, -16), font),
                ))?;
                if let (true, Some(m)) = (d.picked, panel.measured_recall) {
                    chart.draw_series(std::iter::once(Cross::new(
                        (m, y(d)),
                        8,
                        RED.stroke_width(2),
                    )))?;
                    chart.draw_series(LineSeries::new([at, (m, y(d))], RED.mix(0.6)))?;
                }
            }
        }
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Value {
        serde_json::json!({
            "index_plan": {"target_recall": 0.95, "max_query_ms": 50.0, "tables": [
                {"table": "embeddings_384", "rows": 1000, "default_candidate": 0,
                 "pick": {"method": "index", "candidate": 2, "meets_targets": true},
                 "candidates": [
                    {"options": "", "overfetch": 1, "recall_at_most": true, "predicted": {"recall": 1.0, "build_seconds": 9.0, "index_bytes": 8e7}},
                    {"options": "", "overfetch": 2, "predicted": {"recall": 1.0, "build_seconds": 9.0, "index_bytes": 8e7}},
                    {"options": "compress_neighbors=float8", "overfetch": 2, "predicted": {"recall": 0.97, "build_seconds": 5.0, "index_bytes": 2e7}}
                 ]},
                {"table": "embeddings_1024", "rows": 10, "pick": {"method": "exact"}, "candidates": []}
            ]},
            "search_checks": [{"table": "embeddings_384", "recall": 0.9}]
        })
    }

    #[test]
    fn a_panel_per_measured_table_with_the_pick_and_the_default_marked() {
        let p = panels("mixed", &report()).unwrap();
        assert_eq!(p.len(), 1);
        let dots = &p[0].dots;
        // Over-fetch 1 of each setting, and the pick whatever its over-fetch.
        assert_eq!(dots.len(), 2);
        assert!(dots[0].default && !dots[0].picked);
        assert_eq!(dots[0].label, "default (at most)");
        assert!(dots[1].picked && dots[1].label == "float8");
        assert_eq!(p[0].measured_recall, Some(0.9));
    }

    #[test]
    fn the_held_out_measure_after_the_build_wins_over_the_search_check() {
        let mut r = report();
        r["built_recall"] = serde_json::json!([
            {"table": "embeddings_384", "measured_recall": 0.5, "predicted_recall": 0.97}
        ]);
        assert_eq!(panels("mixed", &r).unwrap()[0].measured_recall, Some(0.5));
    }

    #[test]
    fn draws_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("f.png");
        draw(&panels("mixed", &report()).unwrap(), &out).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
    }
}

//! The scaling plot: seconds against rows, log-log, with a dashed linear
//! guide. Text needs a TrueType font, found at run time.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

/// The font looked for first.
pub const PREFERRED_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
/// Where any other `.ttf` is looked for.
pub const FONT_ROOT: &str = "/usr/share/fonts";
const FAMILY: &str = "sans-serif";

/// One size of the scaling run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub rows: u64,
    pub copy_seconds: f64,
    pub copy_verify_seconds: f64,
    /// The reference's copy time, scaled from its plain rows to all rows.
    pub reference_seconds: f64,
}

/// The font the plot used, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Drawn {
    pub font: Option<PathBuf>,
}

/// The preferred font if it exists, else the first `.ttf` under `root` (by
/// path order), else none.
pub fn find_font(preferred: &Path, root: &Path) -> Option<PathBuf> {
    if preferred.is_file() {
        return Some(preferred.to_path_buf());
    }
    let mut found = Vec::new();
    collect_ttf(root, &mut found, 0);
    found.sort();
    found.into_iter().next()
}

fn collect_ttf(dir: &Path, found: &mut Vec<PathBuf>, depth: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && depth < 8 {
            collect_ttf(&path, found, depth + 1);
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("ttf"))
        {
            found.push(path);
        }
    }
}

/// Registers `path` as the plot's font; false when it is not a usable font.
pub fn register(path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    // plotters keeps fonts for the life of the process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    register_font(FAMILY, FontStyle::Normal, bytes).is_ok()
}

/// Draws `points` to the PNG `out`, with text when `font` is a usable font.
pub fn draw(points: &[Point], out: &Path, font: Option<&Path>) -> Result<Drawn> {
    let font = font.filter(|f| register(f)).map(Path::to_path_buf);
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    render(points, out, font.is_some())
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("drawing {}", out.display()))?;
    Ok(Drawn { font })
}

/// Start of a log axis: `min / margin`, lowered to just below the power of
/// ten under `min` so the axis has at least one labelled decade (plotters
/// labels powers of ten and their multiples only).
fn axis_start(min: f64, margin: f64) -> f64 {
    (min / margin).min(10f64.powf(min.log10().floor()) * 0.99)
}

/// A tick of the seconds axis, with as many decimals as its size needs.
fn seconds_label(s: f64) -> String {
    if s >= 10.0 {
        format!("{s:.0}")
    } else if s >= 1.0 {
        format!("{s:.1}")
    } else if s >= 0.01 {
        format!("{s:.2}")
    } else {
        format!("{s:.0e}")
    }
}

fn render(
    points: &[Point],
    out: &Path,
    text: bool,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let mut sorted = points.to_vec();
    sorted.sort_by_key(|p| p.rows);
    let rows = |p: &Point| p.rows.max(1) as f64;
    let secs = |s: f64| s.max(1e-4);
    let x_min = sorted.iter().map(rows).fold(f64::INFINITY, f64::min);
    let x_max = sorted.iter().map(rows).fold(0.0, f64::max);
    let y_min = sorted
        .iter()
        .flat_map(|p| [p.copy_seconds, p.reference_seconds])
        .map(secs)
        .fold(f64::INFINITY, f64::min);
    let y_max = sorted
        .iter()
        .flat_map(|p| [p.copy_verify_seconds, p.reference_seconds])
        .map(secs)
        .fold(0.0, f64::max);
    if sorted.is_empty() {
        return Err("no points to draw".into());
    }

    let root = BitMapBackend::new(out, (900, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut builder = ChartBuilder::on(&root);
    builder.margin(20);
    if text {
        builder
            .caption(
                "Migration time against rows (log-log)",
                (FAMILY, 22).into_font(),
            )
            .x_label_area_size(45)
            .y_label_area_size(65);
    }
    let mut chart = builder.build_cartesian_2d(
        (axis_start(x_min, 1.5)..x_max * 1.5).log_scale(),
        (axis_start(y_min, 2.0)..y_max * 2.0).log_scale(),
    )?;
    let mut mesh = chart.configure_mesh();
    mesh.light_line_style(BLACK.mix(0.04));
    let x_label = |x: &f64| crate::report::thousands(*x);
    let y_label = |y: &f64| seconds_label(*y);
    if text {
        mesh.x_desc("legacy rows")
            .y_desc("seconds")
            .x_labels(12)
            .y_labels(12)
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .label_style((FAMILY, 14).into_font())
            .axis_desc_style((FAMILY, 16).into_font());
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw()?;

    let copy_verify = RGBColor(200, 60, 40);
    let copy = RGBColor(40, 90, 200);
    let series = [
        (
            "copy + verify",
            copy_verify,
            sorted
                .iter()
                .map(|p| (rows(p), secs(p.copy_verify_seconds)))
                .collect::<Vec<_>>(),
        ),
        (
            "copy",
            copy,
            sorted
                .iter()
                .map(|p| (rows(p), secs(p.copy_seconds)))
                .collect(),
        ),
        (
            "libSQL INSERT … SELECT (reference), scaled to all rows",
            RGBColor(130, 130, 130),
            sorted
                .iter()
                .map(|p| (rows(p), secs(p.reference_seconds)))
                .collect(),
        ),
    ];
    for (name, color, data) in series {
        let drawn = chart.draw_series(LineSeries::new(data.clone(), color.stroke_width(2)))?;
        if text {
            drawn.label(name).legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
            });
        }
        chart.draw_series(
            data.into_iter()
                .map(|xy| Circle::new(xy, 4, color.filled())),
        )?;
    }
    // Linear growth of the copy from the smallest size: what a flat
    // per-row cost looks like.
    let first = &sorted[0];
    let (x0, y0) = (rows(first), secs(first.copy_seconds));
    let guide = DashedLineSeries::new(
        [(x0, y0), (x_max * 1.5, y0 * x_max * 1.5 / x0)],
        8,
        6,
        BLACK.mix(0.6).stroke_width(1),
    );
    let drawn = chart.draw_series(guide)?;
    if text {
        drawn
            .label("linear (from the smallest size)")
            .legend(|(x, y)| {
                PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.6).stroke_width(1))
            });
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.3))
            .label_font((FAMILY, 14).into_font())
            .draw()?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points() -> Vec<Point> {
        vec![
            Point {
                rows: 2000,
                copy_seconds: 0.2,
                copy_verify_seconds: 0.3,
                reference_seconds: 0.4,
            },
            Point {
                rows: 5000,
                copy_seconds: 0.45,
                copy_verify_seconds: 0.7,
                reference_seconds: 0.9,
            },
        ]
    }

    #[test]
    fn draws_without_a_font() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("sub/plot.png");
        let drawn = draw(&points(), &out, None).unwrap();
        assert_eq!(drawn.font, None);
        assert!(std::fs::metadata(&out).unwrap().len() > 1000);
    }

    #[test]
    fn a_file_that_is_not_a_font_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("fake.ttf");
        std::fs::write(&fake, b"not a font").unwrap();
        assert_eq!(
            find_font(&dir.path().join("missing.ttf"), dir.path()),
            Some(fake.clone())
        );
        let drawn = draw(&points(), &dir.path().join("p.png"), Some(&fake)).unwrap();
        assert_eq!(drawn.font, None);
    }

    #[test]
    fn log_axes_start_at_a_power_of_ten_or_lower() {
        assert!((axis_start(2000.0, 1.5) - 990.0).abs() < 1e-6);
        assert_eq!(axis_start(10_000.0, 1.5), 10_000.0 / 1.5);
        assert!((axis_start(0.67, 2.0) - 0.099).abs() < 1e-9);
        assert_eq!(seconds_label(250.0), "250");
        assert_eq!(seconds_label(2.5), "2.5");
        assert_eq!(seconds_label(0.25), "0.25");
    }

    #[test]
    fn no_font_anywhere_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(find_font(&dir.path().join("x.ttf"), dir.path()), None);
    }
}

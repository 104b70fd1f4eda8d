//! The experiment's plot: a PNG without text (no font is needed to draw it; the legend is in
//! docs/experiment-malicious.md).
//!
//! Two panels, 480 × 420 px each: correct decision ratio (left) and loss ratio (right), in %
//! (y, 0–100, grid every 10 %), against the share of Byzantine nodes of the attacked kinds
//! (x, 0–100 %, grid every 25 %: k of 4 orderers, k of 4 endorsing organizations, or k of
//! each; series that coincide are drawn 1 % apart so that each stays visible). One line per
//! series: orange = active Byzantine orderers, red = silent Byzantine orderers, blue =
//! Byzantine endorsers, purple = both kinds; a black square at 0 % is the honest network. On
//! the left panel, the grey horizontal lines at 95 % (0–50 %) and 90 % (50–100 %) are the
//! CDR the papers report below and above 50 % malicious nodes; a black cross marks a point
//! with falsifications or forks.

use std::path::Path;

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::malicious::{Report, Row, Series};

/// The series drawn, with their colours.
const SERIES: [(Series, RGBColor); 4] = [
    (Series::ActiveOrderers, RGBColor(230, 120, 0)),
    (Series::SilentOrderers, RGBColor(200, 30, 30)),
    (Series::Endorsers, RGBColor(30, 90, 200)),
    (Series::Both, RGBColor(130, 40, 160)),
];

/// Share of Byzantine nodes of the attacked kinds, % (k of 4).
fn share(row: &Row) -> f64 {
    let k = row
        .scenario
        .byzantine_orderers
        .max(row.scenario.byzantine_orgs as u32);
    f64::from(k) * 25.0
}

/// Draws `report` into the PNG file `path` (960 × 420 px).
///
/// # Errors
/// [`Error::Output`] if drawing or writing the file fails.
pub fn draw(report: &Report, path: &Path) -> Result<()> {
    let fail = |e: String| Error::Output {
        path: path.to_path_buf(),
        message: e,
    };
    let root = BitMapBackend::new(path, (960, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
    let (left, right) = root.split_horizontally(480);
    let honest = report
        .rows
        .iter()
        .find(|r| r.scenario.series == Series::Honest);
    for (area, is_cdr) in [(left, true), (right, false)] {
        let value = |r: &Row| {
            if is_cdr {
                r.metrics.cdr * 100.0
            } else {
                r.metrics.plr * 100.0
            }
        };
        let mut chart = ChartBuilder::on(&area)
            .margin(24)
            .build_cartesian_2d(-2f64..102f64, -2f64..102f64)
            .map_err(|e| fail(e.to_string()))?;
        let grid = RGBColor(225, 225, 225);
        let mut lines: Vec<(Vec<(f64, f64)>, ShapeStyle)> = Vec::new();
        for x in (0..=100).step_by(25) {
            let x = f64::from(x);
            lines.push((vec![(x, 0.0), (x, 100.0)], grid.stroke_width(1)));
        }
        for y in (0..=100).step_by(10) {
            let y = f64::from(y);
            lines.push((vec![(0.0, y), (100.0, y)], grid.stroke_width(1)));
        }
        lines.push((vec![(0.0, 0.0), (100.0, 0.0)], BLACK.stroke_width(2)));
        lines.push((vec![(0.0, 0.0), (0.0, 100.0)], BLACK.stroke_width(2)));
        if is_cdr {
            let paper = RGBColor(150, 150, 150);
            lines.push((vec![(0.0, 95.0), (50.0, 95.0)], paper.stroke_width(2)));
            lines.push((vec![(50.0, 90.0), (100.0, 90.0)], paper.stroke_width(2)));
        }
        for (points, style) in lines {
            chart
                .draw_series(LineSeries::new(points, style))
                .map_err(|e| fail(e.to_string()))?;
        }
        for (n, (series, colour)) in SERIES.into_iter().enumerate() {
            // Series that coincide stay visible side by side: 1 % apart in x.
            let dx = n as f64 - 1.5;
            let at = |r: &Row| share(r) + if share(r) > 0.0 { dx } else { 0.0 };
            let mut points: Vec<(f64, f64)> = honest.map(|h| (0.0, value(h))).into_iter().collect();
            let mut falsified = Vec::new();
            for r in report.rows.iter().filter(|r| r.scenario.series == series) {
                points.push((at(r), value(r)));
                if r.metrics.falsifications > 0 || r.metrics.forks > 0 {
                    falsified.push((at(r), value(r)));
                }
            }
            chart
                .draw_series(LineSeries::new(points.clone(), colour.stroke_width(3)))
                .map_err(|e| fail(e.to_string()))?;
            chart
                .draw_series(points.iter().map(|p| Circle::new(*p, 5, colour.filled())))
                .map_err(|e| fail(e.to_string()))?;
            if is_cdr {
                chart
                    .draw_series(
                        falsified
                            .iter()
                            .map(|p| Cross::new(*p, 8, BLACK.stroke_width(3))),
                    )
                    .map_err(|e| fail(e.to_string()))?;
            }
        }
        if let Some(h) = honest {
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(-1.5, value(h) - 1.5), (1.5, value(h) + 1.5)],
                    BLACK.filled(),
                )))
                .map_err(|e| fail(e.to_string()))?;
        }
    }
    root.present().map_err(|e| fail(e.to_string()))?;
    Ok(())
}

//! Inline SVG plots (plotters' SVG backend): grouped bar charts with optional range bars, and
//! utilization lines with reference levels. Every plot has a title, axis titles with units and a
//! legend; series made of simulated values say so in their legend entry and are drawn hatched
//! (outlined, lighter) so a reader never takes them for measurements.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::RGBColor;

/// Colours of the series, in order (the bench defer chart has 11 series: no colour repeats
/// below 14).
const PALETTE: [RGBColor; 14] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(57, 59, 121),
    RGBColor(140, 109, 49),
    RGBColor(99, 121, 57),
    RGBColor(0, 0, 0),
];

/// One series of a bar chart: a value (and optionally a min–max range) per category.
#[derive(Debug, Clone)]
pub struct Bars {
    /// Legend entry.
    pub name: String,
    /// One value per category (`None`: not measured, no bar).
    pub values: Vec<Option<f64>>,
    /// Optional (min, max) per category, drawn as a whisker.
    pub ranges: Vec<Option<(f64, f64)>>,
    /// The values are simulated, not measured.
    pub simulated: bool,
}

/// A grouped bar chart.
#[derive(Debug, Clone)]
pub struct BarChart {
    /// Caption.
    pub title: String,
    /// X axis title (what the categories are).
    pub x_title: String,
    /// Y axis title, with the unit.
    pub y_title: String,
    /// Category names along the x axis.
    pub categories: Vec<String>,
    /// Series, drawn side by side within each category.
    pub series: Vec<Bars>,
}

/// A horizontal reference level of a line chart.
#[derive(Debug, Clone)]
pub struct Level {
    /// Legend entry.
    pub name: String,
    /// Y value.
    pub value: f64,
}

/// A line chart over days.
#[derive(Debug, Clone)]
pub struct LineChart {
    /// Caption.
    pub title: String,
    /// X axis title, with the unit.
    pub x_title: String,
    /// Y axis title, with the unit.
    pub y_title: String,
    /// (x, y) points of the line, and its legend entry.
    pub line: (String, Vec<(f64, f64)>),
    /// Reference levels.
    pub levels: Vec<Level>,
}

const WIDTH: u32 = 900;
/// Room for a bar chart's legend, right of the plotting area, in pixels.
const LEGEND_WIDTH: u32 = 220;
/// The first legend row's centre, a row's height and a colour key's width, in pixels.
const LEGEND_TOP: i32 = 40;
const LEGEND_ROW: i32 = 16;
const LEGEND_KEY: i32 = 12;
const HEIGHT: u32 = 320;

fn series_label(b: &Bars) -> String {
    if b.simulated {
        format!("{} (simulated)", b.name)
    } else {
        b.name.clone()
    }
}

/// Renders a bar chart as an SVG document (a string starting with `<svg`).
pub fn bar_chart(chart: &BarChart) -> String {
    let mut svg = String::new();
    if let Err(err) = draw_bars(chart, &mut svg) {
        return error_svg(&chart.title, &err.to_string());
    }
    svg
}

fn draw_bars(
    spec: &BarChart,
    out: &mut String,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let n = spec.categories.len().max(1);
    let ymax = spec
        .series
        .iter()
        .flat_map(|s| {
            s.values
                .iter()
                .flatten()
                .copied()
                .chain(s.ranges.iter().flatten().map(|r| r.1))
        })
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let ymax = if ymax > 0.0 { ymax * 1.1 } else { 1.0 };
    {
        let root = SVGBackend::with_string(out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        // The legend gets a column of its own on the right: it never covers a bar.
        let mut chart = ChartBuilder::on(&root)
            .caption(&spec.title, ("sans-serif", 16))
            .margin(10)
            .margin_right(LEGEND_WIDTH)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..ymax)?;
        let categories = spec.categories.clone();
        let formatter = move |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < categories.len() {
                categories[i as usize].clone()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n + 1)
            .x_label_formatter(&formatter)
            .x_desc(spec.x_title.as_str())
            .y_desc(spec.y_title.as_str())
            .label_style(("sans-serif", 11))
            .axis_desc_style(("sans-serif", 13))
            .draw()?;
        let k = spec.series.len().max(1) as f64;
        let group = 0.8;
        let width = group / k;
        for (s, bars) in spec.series.iter().enumerate() {
            let color = PALETTE[s % PALETTE.len()];
            let style: ShapeStyle = if bars.simulated {
                color.mix(0.35).filled()
            } else {
                color.filled()
            };
            let x0 = |i: usize| i as f64 - group / 2.0 + s as f64 * width;
            let rects = bars.values.iter().enumerate().filter_map(|(i, v)| {
                let v = (*v)?;
                v.is_finite()
                    .then(|| Rectangle::new([(x0(i), 0.0), (x0(i) + width * 0.92, v)], style))
            });
            chart.draw_series(rects)?;
            if bars.simulated {
                // An outline over the pale fill: the hatching that marks simulated values.
                let outlines = bars.values.iter().enumerate().filter_map(|(i, v)| {
                    let v = (*v)?;
                    v.is_finite().then(|| {
                        Rectangle::new(
                            [(x0(i), 0.0), (x0(i) + width * 0.92, v)],
                            color.stroke_width(1),
                        )
                    })
                });
                chart.draw_series(outlines)?;
            }
            let whiskers = bars.ranges.iter().enumerate().filter_map(|(i, r)| {
                let (lo, hi) = (*r)?;
                let x = x0(i) + width * 0.46;
                (lo.is_finite() && hi.is_finite())
                    .then(|| PathElement::new(vec![(x, lo), (x, hi)], BLACK.stroke_width(2)))
            });
            chart.draw_series(whiskers)?;
        }
        // The legend, drawn on the whole image in the column right of the plotting area:
        // plotters' own series labels are clipped to the plotting area, so placed there they
        // lost their colour keys (and frame), leaving names no reader could match to bars.
        let (xs, _) = chart.plotting_area().get_pixel_range();
        let lx = xs.end + 12;
        let font = ("sans-serif", 11)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center));
        for (s, bars) in spec.series.iter().enumerate() {
            let color = PALETTE[s % PALETTE.len()];
            let y = LEGEND_TOP + LEGEND_ROW * s as i32;
            let key = [(lx, y - 5), (lx + LEGEND_KEY, y + 5)];
            if bars.simulated {
                root.draw(&Rectangle::new(key, color.mix(0.35).filled()))?;
                root.draw(&Rectangle::new(key, color.stroke_width(1)))?;
            } else {
                root.draw(&Rectangle::new(key, color.filled()))?;
            }
            root.draw(&Text::new(
                series_label(bars),
                (lx + LEGEND_KEY + 6, y),
                font.clone(),
            ))?;
        }
        root.present()?;
    }
    Ok(())
}

/// Renders a line chart as an SVG document.
pub fn line_chart(spec: &LineChart) -> String {
    let mut svg = String::new();
    if let Err(err) = draw_lines(spec, &mut svg) {
        return error_svg(&spec.title, &err.to_string());
    }
    svg
}

fn draw_lines(
    spec: &LineChart,
    out: &mut String,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let points = &spec.line.1;
    let x1 = points.iter().map(|p| p.0).fold(1.0f64, f64::max);
    let ymax = points
        .iter()
        .map(|p| p.1)
        .chain(spec.levels.iter().map(|l| l.value))
        .filter(|v| v.is_finite())
        .fold(1.0f64, f64::max)
        * 1.1;
    // Absurd inputs must not make an absurd axis.
    let ymax = ymax.min(2000.0);
    {
        let root = SVGBackend::with_string(out, (WIDTH, 260)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&spec.title, ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..x1, 0f64..ymax)?;
        chart
            .configure_mesh()
            .x_desc(spec.x_title.as_str())
            .y_desc(spec.y_title.as_str())
            .label_style(("sans-serif", 11))
            .axis_desc_style(("sans-serif", 13))
            .draw()?;
        let line_color = PALETTE[0];
        chart
            .draw_series(LineSeries::new(points.iter().copied(), line_color))?
            .label(spec.line.0.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], line_color));
        for (i, level) in spec.levels.iter().enumerate() {
            let color = PALETTE[(i + 2) % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    [(0.0, level.value), (x1, level.value)],
                    color.stroke_width(2),
                ))?
                .label(format!("{} ({:.0})", level.name, level.value))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 14, y)], color.stroke_width(2))
                });
        }
        // The legend sits outside the data's way: labels never overlap each other.
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 11))
            .draw()?;
        root.present()?;
    }
    Ok(())
}

/// A small SVG saying the plot could not be drawn (never a silent gap).
fn error_svg(title: &str, err: &str) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="600" height="40"><text x="4" y="24" font-size="13">plot "{}" could not be drawn: {}</text></svg>"#,
        crate::html::esc(title),
        crate::html::esc(err)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_chart_has_axis_titles_legend_and_category_labels() {
        let svg = bar_chart(&BarChart {
            title: "ns per defer".to_owned(),
            x_title: "scenario".to_owned(),
            y_title: "ns per defer".to_owned(),
            categories: vec!["loop8".to_owned(), "loop64".to_owned()],
            series: vec![
                Bars {
                    name: "manual".to_owned(),
                    values: vec![Some(2.0), Some(2.5)],
                    ranges: vec![Some((1.5, 2.5)), None],
                    simulated: false,
                },
                Bars {
                    name: "chain".to_owned(),
                    values: vec![None, Some(12.0)],
                    ranges: vec![],
                    simulated: true,
                },
            ],
        });
        assert!(svg.starts_with("<svg"), "{svg}");
        for text in [
            "scenario",
            "ns per defer",
            "loop8",
            "loop64",
            "manual",
            "chain (simulated)",
        ] {
            assert!(svg.contains(text), "missing {text}");
        }
    }

    /// Every series has a colour key beside its name, right of the bars (plotters clipped the
    /// keys of a legend placed outside the plotting area: names with no colours, once).
    #[test]
    fn bar_chart_legend_has_a_colour_key_per_series() {
        let series = |name: &str, simulated| Bars {
            name: name.to_owned(),
            values: vec![Some(1.0), Some(2.0)],
            ranges: vec![],
            simulated,
        };
        let svg = bar_chart(&BarChart {
            title: "t".to_owned(),
            x_title: "x".to_owned(),
            y_title: "y".to_owned(),
            categories: vec!["a".to_owned(), "b".to_owned()],
            series: vec![series("measured", false), series("sim", true)],
        });
        let attr = |line: &str, name: &str| -> Option<String> {
            let at = line.find(&format!(" {name}=\""))? + name.len() + 3;
            Some(line[at..].split('"').next()?.to_owned())
        };
        let rects: Vec<(i64, String)> = svg
            .lines()
            .filter(|l| l.starts_with("<rect") && attr(l, "fill").as_deref() != Some("none"))
            .filter_map(|l| Some((attr(l, "x")?.parse().ok()?, attr(l, "fill")?)))
            .collect();
        // plotters writes `<text x=.. ..>`, the text, `</text>` on three lines.
        let lines: Vec<&str> = svg.lines().collect();
        let text_x = |label: &str| -> i64 {
            let at = lines
                .iter()
                .position(|l| l.trim() == label)
                .unwrap_or_else(|| panic!("no legend text {label}"));
            attr(lines[at - 1], "x")
                .and_then(|x| x.parse().ok())
                .expect("text x")
        };
        for (i, label) in ["measured", "sim (simulated)"].iter().enumerate() {
            let colour = format!(
                "#{:02X}{:02X}{:02X}",
                PALETTE[i].0, PALETTE[i].1, PALETTE[i].2
            );
            let tx = text_x(label);
            let key = rects
                .iter()
                .find(|(x, fill)| *fill == colour && *x < tx && tx - *x <= 30)
                .unwrap_or_else(|| panic!("no colour key {colour} left of {label}: {rects:?}"));
            let bars_end = rects
                .iter()
                .filter(|(x, fill)| *fill == colour && *x < key.0)
                .count();
            assert_eq!(bars_end, 2, "the key is right of the series' two bars");
        }
    }

    #[test]
    fn line_chart_has_levels_in_the_legend() {
        let svg = line_chart(&LineChart {
            title: "api".to_owned(),
            x_title: "day".to_owned(),
            y_title: "CPU utilization (%)".to_owned(),
            line: ("hourly max".to_owned(), vec![(0.0, 10.0), (1.0, 30.0)]),
            levels: vec![Level {
                name: "ceiling".to_owned(),
                value: 83.0,
            }],
        });
        assert!(svg.contains("ceiling (83)"));
        assert!(svg.contains("CPU utilization (%)"));
    }
}

//! Fuzzes the CSV parser, and the model on whatever parses: neither may panic.
#![no_main]

use frugal_output::{Render, Style};
use frugal_rightsize::{analyze, parse_csv, Catalog, Config, SeriesSet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut set = SeriesSet::new();
    if parse_csv("fuzz.csv", data, &mut set).is_ok() {
        // No sufficiency limits: every parsed row reaches the model, the plots and the renderers.
        let config = Config {
            min_hours: 0.0,
            min_windows: 0,
            ..Config::default()
        };
        let report = analyze(&set.into_series(), &Catalog::embedded(), &config);
        let _ = report.document().to_text(&Style::colored());
        let _ = report.document().to_markdown();
        let _ = report.csv_table().map(|t| t.to_csv());
        let _ = report.to_json();
        let _ = report.to_html();
    }
});

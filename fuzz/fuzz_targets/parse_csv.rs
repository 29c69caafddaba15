//! Fuzzes the CSV parser, and the model on whatever parses: neither may panic.
#![no_main]

use frugal_rightsize::{analyze, parse_csv, render, Catalog, Config, Format, SeriesSet};
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
        for format in [Format::Table, Format::Json, Format::Csv, Format::Html] {
            let _ = render(&report, format);
        }
    }
});

//! The one output layer of frugal.
//!
//! Every report frugal produces (a `perf stat`-like count, an experiment, a rightsizing, the
//! main job's summary) is a typed value that lives beside the code that measured it. It renders
//! itself by implementing [`Render`]: it describes itself as a [`Document`] — headings, tables and
//! notes — and this crate turns the document into a terminal table (coloured when the terminal
//! allows), Markdown or CSV. JSON comes from the report's own `serde::Serialize`, wrapped in
//! [`Versioned`] so every file names its schema and version. There is one table renderer
//! ([`Table`]), one set of unit formatters ([`units`]) and one sample summary ([`Summary`]) for
//! the whole workspace.
//!
//! ```
//! use frugal_output::{Align, Document, Render, Style, Table};
//!
//! struct Two;
//! impl Render for Two {
//!     const SCHEMA: &'static str = "frugal-example";
//!     const VERSION: u32 = 1;
//!     fn document(&self) -> Document {
//!         let mut t = Table::new([("kind", Align::Left), ("ns/op", Align::Right)]);
//!         t.row(["guard", "0.9"]);
//!         t.row(["chain", "3.1"]);
//!         let mut d = Document::new("frugal example");
//!         d.table(t).note("medians of 21 samples");
//!         d
//!     }
//! }
//! let text = Two.document().to_text(&Style::plain());
//! assert!(text.contains("guard    0.9"));
//! assert!(Two.document().to_markdown().contains("| guard | 0.9 |"));
//! ```

#![forbid(unsafe_code)]

mod doc;
mod style;
mod summary;
mod table;
pub mod units;

pub use doc::{Block, Document, Render, Versioned};
pub use style::{ColorChoice, Style, Tone};
pub use summary::{median_of_sorted, quantile_of_sorted, Summary};
pub use table::{Align, Cell, Table};

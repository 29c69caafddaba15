//! A report as a document: what [`Render`] produces and every format is made from.

use serde::Serialize;

use crate::style::{Style, Tone};
use crate::table::Table;

/// One part of a [`Document`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// A section heading.
    Heading(String),
    /// A line of text (a context line, a verdict, a note), with its tone.
    Line(String, Tone),
    /// A table.
    Table(Table),
    /// An empty line between parts.
    Blank,
}

/// A report laid out for people: a title, then headings, lines and tables in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// The first line (the command and what it measured).
    pub title: String,
    /// Everything after the title.
    pub blocks: Vec<Block>,
}

impl Document {
    /// A document with `title` and nothing else yet.
    pub fn new(title: impl Into<String>) -> Document {
        Document {
            title: title.into(),
            blocks: Vec::new(),
        }
    }

    /// Appends a section heading.
    pub fn heading(&mut self, text: impl Into<String>) -> &mut Document {
        self.blocks.push(Block::Heading(text.into()));
        self
    }

    /// Appends a plain line.
    pub fn line(&mut self, text: impl Into<String>) -> &mut Document {
        self.toned(text, Tone::Plain)
    }

    /// Appends a line with a tone.
    pub fn toned(&mut self, text: impl Into<String>, tone: Tone) -> &mut Document {
        self.blocks.push(Block::Line(text.into(), tone));
        self
    }

    /// Appends `  note: text` (dimmed on a terminal).
    pub fn note(&mut self, text: impl AsRef<str>) -> &mut Document {
        self.toned(format!("  note: {}", text.as_ref()), Tone::Dim)
    }

    /// Appends a table.
    pub fn table(&mut self, table: Table) -> &mut Document {
        self.blocks.push(Block::Table(table));
        self
    }

    /// Appends an empty line.
    pub fn blank(&mut self) -> &mut Document {
        self.blocks.push(Block::Blank);
        self
    }

    /// Appends `other`: its title as a line of its own, then its blocks (a report that embeds
    /// another, as `bench defer --claims` embeds `bench tasks`).
    pub fn append(&mut self, other: Document) -> &mut Document {
        self.blocks.push(Block::Line(other.title, Tone::Bold));
        self.blocks.extend(other.blocks);
        self
    }

    /// The tables, in order.
    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.blocks.iter().filter_map(|b| match b {
            Block::Table(t) => Some(t),
            _ => None,
        })
    }

    /// Terminal text: the title, headings as lines of their own (bold on a terminal), lines
    /// and tables as they are.
    pub fn to_text(&self, style: &Style) -> String {
        let mut out = style.paint(&self.title, Tone::Bold);
        out.push('\n');
        for block in &self.blocks {
            match block {
                Block::Heading(h) => {
                    out.push_str(&style.paint(h, Tone::Bold));
                    out.push('\n');
                }
                Block::Line(text, tone) => {
                    out.push_str(&style.paint(text, *tone));
                    out.push('\n');
                }
                Block::Table(t) => out.push_str(&t.to_text(style)),
                Block::Blank => out.push('\n'),
            }
        }
        out
    }

    /// Markdown: `#` title, `##` headings, tables as pipe tables, runs of lines as one
    /// paragraph with hard line breaks.
    pub fn to_markdown(&self) -> String {
        let mut out = format!("# {}\n", self.title.trim());
        let mut in_lines = false;
        for block in &self.blocks {
            if !matches!(block, Block::Line(..)) && in_lines {
                in_lines = false;
            }
            match block {
                Block::Heading(h) => out.push_str(&format!("\n## {}\n", h.trim())),
                Block::Line(text, _) => {
                    if !in_lines {
                        out.push('\n');
                        in_lines = true;
                    } else {
                        // The previous line ends in a hard break.
                        out.insert_str(out.len() - 1, "  ");
                    }
                    out.push_str(text.trim());
                    out.push('\n');
                }
                Block::Table(t) => {
                    out.push('\n');
                    out.push_str(&t.to_markdown());
                }
                Block::Blank => {}
            }
        }
        out
    }
}

/// A report that can be shown to people. JSON comes from `serde::Serialize` (see
/// [`Versioned`]); everything else from [`Render::document`].
pub trait Render {
    /// The name of the report's JSON schema (`frugal-stat`, `frugal-bench-tasks`, ...).
    const SCHEMA: &'static str;
    /// The schema's version: raised when a field changes meaning or is removed.
    const VERSION: u32;

    /// The report laid out: title, headings, lines, tables.
    fn document(&self) -> Document;

    /// The table `--format csv` / `--csv FILE` write: one row per measurement, one column per
    /// measure. The default is the document's first table; a report whose first table is not
    /// the one a script wants overrides this. `None`: the report has no CSV form.
    fn csv_table(&self) -> Option<Table> {
        self.document().tables().next().cloned()
    }

    /// A self-contained HTML page, for a report that has one (`rightsize`'s plots); `None`
    /// (the default): the report has no HTML form.
    fn html_page(&self) -> Option<String> {
        None
    }

    /// The JSON document: the report's fields under [`Versioned`]'s `schema` and `version`.
    /// A report whose own fields already name its schema (a persisted format with readers)
    /// overrides this to serialize itself as it is.
    fn to_json(&self) -> serde_json::Result<String>
    where
        Self: Serialize + Sized,
    {
        Versioned::new(Self::SCHEMA, Self::VERSION, self).to_json()
    }
}

/// A report with its schema name and version on top, for JSON files:
/// `{"schema": "frugal-stat", "version": 1, ...the report's fields}`.
#[derive(Debug, Serialize)]
pub struct Versioned<'a, T: Serialize> {
    /// The schema's name.
    pub schema: &'static str,
    /// Its version: raised when a field changes meaning or is removed.
    pub version: u32,
    /// The report.
    #[serde(flatten)]
    pub report: &'a T,
}

impl<'a, T: Serialize> Versioned<'a, T> {
    /// Wraps `report`.
    pub fn new(schema: &'static str, version: u32, report: &'a T) -> Versioned<'a, T> {
        Versioned {
            schema,
            version,
            report,
        }
    }

    /// Pretty JSON with a final newline.
    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self).map(|s| s + "\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Table;

    fn doc() -> Document {
        let mut t = Table::numeric(["a", "b"]);
        t.row(["x", "1"]);
        let mut d = Document::new("frugal test: two lines");
        d.line("context one")
            .line("context two")
            .table(t)
            .heading("Claims")
            .note("simulated");
        d
    }

    #[test]
    fn text_keeps_order_and_lines() {
        let text = doc().to_text(&Style::plain());
        assert_eq!(
            text,
            "frugal test: two lines\ncontext one\ncontext two\na  b\n----\nx  1\nClaims\n  note: simulated\n"
        );
    }

    #[test]
    fn markdown_has_headings_breaks_and_tables() {
        let md = doc().to_markdown();
        assert_eq!(
            md,
            "# frugal test: two lines\n\ncontext one  \ncontext two\n\n| a | b |\n| --- | ---: |\n| x | 1 |\n\n## Claims\n\nnote: simulated\n"
        );
    }

    #[test]
    fn versioned_json_puts_the_schema_first() {
        #[derive(Serialize)]
        struct R {
            n: u32,
        }
        let json = Versioned::new("frugal-test", 3, &R { n: 7 })
            .to_json()
            .unwrap();
        assert_eq!(
            json,
            "{\n  \"schema\": \"frugal-test\",\n  \"version\": 3,\n  \"n\": 7\n}\n"
        );
    }
}

//! The one table: aligned terminal text, Markdown, CSV.

use crate::style::{Style, Tone};

/// How a column's cells line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Names and labels.
    Left,
    /// Numbers.
    Right,
}

/// One cell: its text and what it means (for colour).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cell {
    /// The text shown.
    pub text: String,
    /// Its colour on a terminal.
    pub tone: Tone,
}

impl Cell {
    /// A cell with a tone.
    pub fn new(text: impl Into<String>, tone: Tone) -> Cell {
        Cell {
            text: text.into(),
            tone,
        }
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell {
            text,
            tone: Tone::Plain,
        }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell::from(text.to_owned())
    }
}

impl From<&String> for Cell {
    fn from(text: &String) -> Cell {
        Cell::from(text.clone())
    }
}

/// A table: named, aligned columns and rows of cells.
///
/// On a terminal the columns are separated by two spaces, the header is underlined by a rule
/// of dashes, and a row shorter than the header is padded with empty cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    headers: Vec<(String, Align)>,
    rows: Vec<Vec<Cell>>,
    indent: usize,
}

impl Table {
    /// A table with these `(header, alignment)` columns.
    pub fn new<H: Into<String>>(columns: impl IntoIterator<Item = (H, Align)>) -> Table {
        Table {
            headers: columns.into_iter().map(|(h, a)| (h.into(), a)).collect(),
            rows: Vec::new(),
            indent: 0,
        }
    }

    /// A table whose first column is left-aligned and the others right-aligned (labels, then
    /// numbers: the common case).
    pub fn numeric<H: Into<String>>(headers: impl IntoIterator<Item = H>) -> Table {
        Table::new(
            headers
                .into_iter()
                .enumerate()
                .map(|(i, h)| (h, if i == 0 { Align::Left } else { Align::Right })),
        )
    }

    /// Indents every terminal line by `spaces`.
    pub fn indent(mut self, spaces: usize) -> Table {
        self.indent = spaces;
        self
    }

    /// Appends a row.
    pub fn row<C: Into<Cell>>(&mut self, cells: impl IntoIterator<Item = C>) -> &mut Table {
        self.rows.push(cells.into_iter().map(Into::into).collect());
        self
    }

    /// The headers.
    pub fn headers(&self) -> impl Iterator<Item = &str> {
        self.headers.iter().map(|(h, _)| h.as_str())
    }

    /// The rows.
    pub fn rows(&self) -> &[Vec<Cell>] {
        &self.rows
    }

    /// `true` when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn columns(&self) -> usize {
        self.rows
            .iter()
            .map(Vec::len)
            .chain([self.headers.len()])
            .max()
            .unwrap_or(0)
    }

    fn align(&self, i: usize) -> Align {
        self.headers.get(i).map_or(Align::Right, |(_, a)| *a)
    }

    /// Terminal text, one line per row, each ending in a newline.
    pub fn to_text(&self, style: &Style) -> String {
        let n = self.columns();
        let empty = Cell::default();
        let cell = |row: &[Cell], i: usize| row.get(i).unwrap_or(&empty).clone();
        let header: Vec<Cell> = (0..n)
            .map(|i| {
                Cell::new(
                    self.headers.get(i).map_or("", |(h, _)| h.as_str()),
                    Tone::Bold,
                )
            })
            .collect();
        let widths: Vec<usize> = (0..n)
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| width(&cell(r, i).text))
                    .chain([width(&header[i].text)])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let pad = " ".repeat(self.indent);
        let line = |row: &[Cell]| {
            let mut out = pad.clone();
            for (i, w) in widths.iter().enumerate() {
                let c = cell(row, i);
                let fill = " ".repeat(w - width(&c.text));
                let painted = style.paint(&c.text, c.tone);
                if i > 0 {
                    out.push_str("  ");
                }
                match self.align(i) {
                    Align::Left => {
                        out.push_str(&painted);
                        out.push_str(&fill);
                    }
                    Align::Right => {
                        out.push_str(&fill);
                        out.push_str(&painted);
                    }
                }
            }
            let mut out = out.trim_end().to_owned();
            out.push('\n');
            out
        };
        let mut out = line(&header);
        // The rule spans the header line: a free-text last column (a reason, a note) does not
        // draw it across the whole terminal.
        let rule = width(&line(
            &header
                .iter()
                .map(|c| Cell::from(c.text.as_str()))
                .collect::<Vec<_>>(),
        ))
        .saturating_sub(1 + self.indent);
        out.push_str(&pad);
        out.push_str(&"-".repeat(rule));
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out
    }

    /// A GitHub-flavoured Markdown table (pipes in cells escaped).
    pub fn to_markdown(&self) -> String {
        let n = self.columns();
        let esc = |s: &str| s.replace('|', "\\|").replace('\n', " ");
        let mut out = String::from("|");
        for i in 0..n {
            out.push_str(&format!(
                " {} |",
                esc(self.headers.get(i).map_or("", |(h, _)| h))
            ));
        }
        out.push_str("\n|");
        for i in 0..n {
            out.push_str(match self.align(i) {
                Align::Left => " --- |",
                Align::Right => " ---: |",
            });
        }
        out.push('\n');
        for row in &self.rows {
            out.push('|');
            for i in 0..n {
                out.push_str(&format!(
                    " {} |",
                    esc(row.get(i).map_or("", |c| c.text.as_str()))
                ));
            }
            out.push('\n');
        }
        out
    }

    /// RFC 4180 CSV with a header line (quoted where needed, by the csv crate).
    pub fn to_csv(&self) -> String {
        self.to_csv_with(b',')
    }

    /// CSV with `delimiter` between fields (perf's `-x SEP`).
    pub fn to_csv_with(&self, delimiter: u8) -> String {
        let n = self.columns();
        let mut w = csv::WriterBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .from_writer(Vec::new());
        let header: Vec<&str> = (0..n)
            .map(|i| self.headers.get(i).map_or("", |(h, _)| h.as_str()))
            .collect();
        // Writing to a Vec cannot fail.
        let _ = w.write_record(&header);
        for row in &self.rows {
            let _ = w.write_record((0..n).map(|i| row.get(i).map_or("", |c| c.text.as_str())));
        }
        let bytes = w.into_inner().unwrap_or_default();
        String::from_utf8(bytes).unwrap_or_default()
    }
}

/// Display width: one column per `char` (the tables hold ASCII, `µ`, `±`, `×`, `≤`).
fn width(s: &str) -> usize {
    s.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::numeric(["kind", "µs/op", "note"]);
        t.row(["guard", "1.5", "x|y"]);
        t.row(vec![Cell::from("chain"), Cell::new("12.25", Tone::Bad)]);
        t
    }

    #[test]
    fn text_aligns_by_characters_not_bytes() {
        let text = sample().to_text(&Style::plain());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "kind   µs/op  note");
        assert_eq!(lines[1], "------------------");
        assert_eq!(lines[2], "guard    1.5   x|y");
        assert_eq!(lines[3], "chain  12.25");
    }

    #[test]
    fn colour_does_not_change_the_layout() {
        let plain = sample().to_text(&Style::plain());
        let colored = sample().to_text(&Style::colored());
        assert_ne!(plain, colored);
        let stripped: String = {
            let mut out = String::new();
            let mut esc = false;
            for ch in colored.chars() {
                match (esc, ch) {
                    (false, '\x1b') => esc = true,
                    (true, 'm') => esc = false,
                    (false, c) => out.push(c),
                    _ => {}
                }
            }
            out
        };
        assert_eq!(stripped, plain);
    }

    #[test]
    fn markdown_and_csv_escape() {
        let md = sample().to_markdown();
        assert!(md.starts_with("| kind | µs/op | note |\n| --- | ---: | ---: |\n"));
        assert!(md.contains("| guard | 1.5 | x\\|y |"));
        let csv = sample().to_csv();
        assert_eq!(csv, "kind,µs/op,note\nguard,1.5,x|y\nchain,12.25,\n");
        let mut t = Table::numeric(["a"]);
        t.row(["1,5"]);
        assert_eq!(t.to_csv(), "a\n\"1,5\"\n");
        assert_eq!(t.to_csv_with(b';'), "a\n1,5\n");
    }

    #[test]
    fn the_rule_spans_the_header_not_a_long_last_column() {
        let mut t = Table::new([("step", Align::Left), ("why", Align::Left)]);
        t.row(["io", "skipped because nothing here can measure it"]);
        let text = t.to_text(&Style::plain());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "step  why");
        assert_eq!(lines[1], "---------");
    }

    #[test]
    fn indent_applies_to_every_line() {
        let text = sample().indent(2).to_text(&Style::plain());
        assert!(text.lines().all(|l| l.starts_with("  ")));
    }
}

//! Plain-text tables for terminals: columns padded to their widest cell, counting a CJK character
//! as two columns (holder names are Chinese), two spaces between columns, no trailing blanks.

use unicode_width::UnicodeWidthStr;

/// A table being built.
#[derive(Debug, Clone)]
pub struct Table {
    head: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headings.
    pub fn new<S: AsRef<str>>(head: &[S]) -> Table {
        Table {
            head: head.iter().map(|s| s.as_ref().to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are empty, extra cells are dropped).
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut row: Vec<String> = cells.into_iter().map(Into::into).collect();
        row.resize(self.head.len(), String::new());
        // A cell is one line: a newline would break the columns.
        for cell in &mut row {
            if cell.contains(['\n', '\r', '\t']) {
                *cell = cell.replace(['\n', '\r', '\t'], " ");
            }
        }
        self.rows.push(row);
    }

    /// The table as text, one line per row after the heading line.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.head.iter().map(|h| h.width()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.width());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.head).chain(&self.rows) {
            let mut line = String::new();
            for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', w.saturating_sub(cell.width())));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Cents as yuan with two decimals, e.g. `-1234` → `-12.34`.
pub fn yuan(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_with_wide_characters() {
        let mut t = Table::new(&["CARD", "NAME", "X"]);
        t.row(["W00000018", "测试李二", "1"]);
        t.row(["W1", "ab", ""]);
        let text = t.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "CARD       NAME      X");
        assert_eq!(lines[1], "W00000018  测试李二  1");
        assert_eq!(lines[2], "W1         ab");
    }

    #[test]
    fn rows_are_padded_and_flattened() {
        let mut t = Table::new(&["A", "B"]);
        t.row(["x\ny"]);
        assert_eq!(t.render(), "A    B\nx y\n");
    }

    #[test]
    fn money() {
        assert_eq!(yuan(0), "0.00");
        assert_eq!(yuan(5), "0.05");
        assert_eq!(yuan(123456), "1234.56");
        assert_eq!(yuan(-2001), "-20.01");
        assert_eq!(yuan(i64::MIN), "-92233720368547758.08");
    }
}

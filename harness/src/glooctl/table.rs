//! Text tables laid out the way glooctl's table printer (Go's `olekukonko/tablewriter` with its
//! defaults and left alignment) lays them out, so emulated output reads like the real tool's.
//!
//! The rules reproduced here:
//! - headers are upper-cased and centred (an odd gap puts the extra space on the right);
//! - every cell wider than 30 columns is wrapped at spaces, choosing the breaks that minimise the
//!   sum of squared slack per line (a word longer than the limit raises the limit to its width);
//! - a cell with embedded newlines is first joined into one paragraph ("reflow");
//! - borders are `+---+` rules above and below the header and below the last row, cells are
//!   framed by `| ` and ` |`, and there are no rules between rows.

/// Cells wider than this are wrapped (tablewriter's `MaxColWidth` default).
const MAX_COLUMN_WIDTH: usize = 30;

/// A table under construction.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|h| h.to_uppercase()).collect(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The rendered table, every line ending in `\n`.
    pub(crate) fn render(&self) -> String {
        let columns = self.header.len();
        let header: Vec<Vec<String>> = self.header.iter().map(|h| wrap_cell(h)).collect();
        let rows: Vec<Vec<Vec<String>>> = self
            .rows
            .iter()
            .map(|row| {
                (0..columns)
                    .map(|i| wrap_cell(row.get(i).map_or("", String::as_str)))
                    .collect()
            })
            .collect();
        let mut widths = vec![0usize; columns];
        for cell_lines in std::iter::once(&header).chain(rows.iter()) {
            for (i, lines) in cell_lines.iter().enumerate() {
                let widest = lines.iter().map(|l| width(l)).max().unwrap_or(0);
                widths[i] = widths[i].max(widest);
            }
        }
        let rule: String = {
            let mut rule = String::from("+");
            for w in &widths {
                rule.push_str(&"-".repeat(w + 2));
                rule.push('+');
            }
            rule.push('\n');
            rule
        };
        let mut out = String::new();
        out.push_str(&rule);
        print_row(&mut out, &header, &widths, Align::Center);
        out.push_str(&rule);
        for row in &rows {
            print_row(&mut out, row, &widths, Align::Left);
        }
        out.push_str(&rule);
        out
    }
}

#[derive(Clone, Copy)]
enum Align {
    Left,
    Center,
}

fn print_row(out: &mut String, cells: &[Vec<String>], widths: &[usize], align: Align) {
    let height = cells.iter().map(Vec::len).max().unwrap_or(1).max(1);
    for line in 0..height {
        out.push('|');
        for (i, lines) in cells.iter().enumerate() {
            let text = lines.get(line).map_or("", String::as_str);
            let gap = widths[i].saturating_sub(width(text));
            let (left, right) = match align {
                Align::Left => (0, gap),
                Align::Center => (gap / 2, gap - gap / 2),
            };
            out.push(' ');
            out.push_str(&" ".repeat(left));
            out.push_str(text);
            out.push_str(&" ".repeat(right));
            out.push_str(" |");
        }
        out.push('\n');
    }
}

fn width(text: &str) -> usize {
    text.chars().count()
}

/// The lines one cell occupies.
fn wrap_cell(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.split('\n').collect();
    let limit = lines
        .iter()
        .map(|l| width(l))
        .max()
        .unwrap_or(0)
        .min(MAX_COLUMN_WIDTH);
    wrap_paragraph(&lines.join(" "), limit)
}

/// Minimum-raggedness word wrap; words are separated by single spaces (runs of spaces give empty
/// words, which keeps the original spacing when a line is not broken there).
fn wrap_paragraph(paragraph: &str, limit: usize) -> Vec<String> {
    let words: Vec<&str> = paragraph.split(' ').collect();
    let limit = words.iter().map(|w| width(w)).fold(limit, usize::max);
    let count = words.len();
    // line_width(i, j): width of words[i..=j] joined by single spaces.
    let prefix: Vec<usize> = std::iter::once(0)
        .chain(words.iter().scan(0, |sum, w| {
            *sum += width(w);
            Some(*sum)
        }))
        .collect();
    let line_width = |i: usize, j: usize| prefix[j + 1] - prefix[i] + (j - i);
    const OVERFLOW_PENALTY: i64 = 100_000;
    let mut cost = vec![i64::MAX; count];
    let mut next_break = vec![count; count];
    for i in (0..count).rev() {
        if line_width(i, count - 1) <= limit {
            cost[i] = 0;
            next_break[i] = count;
            continue;
        }
        for j in i + 1..count {
            let used = line_width(i, j - 1);
            let slack = limit as i64 - used as i64;
            let mut candidate = slack * slack + cost[j];
            if used > limit {
                candidate += OVERFLOW_PENALTY;
            }
            if candidate < cost[i] {
                cost[i] = candidate;
                next_break[i] = j;
            }
        }
    }
    let mut lines = Vec::new();
    let mut i = 0;
    while i < count {
        lines.push(words[i..next_break[i]].join(" "));
        i = next_break[i];
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn long_cells_wrap_like_tablewriter() {
        assert_eq!(
            wrap_cell("/appmesh/color -> gloo-system.appmesh-demo-colorgateway-9080 (upstream)"),
            vec![
                "/appmesh/color ->",
                "gloo-system.appmesh-demo-colorgateway-9080",
                "(upstream)"
            ]
        );
        assert_eq!(
            wrap_cell("name: appmesh-demo-colorgatewayv2-9080"),
            vec!["name:", "appmesh-demo-colorgatewayv2-9080"]
        );
        assert_eq!(
            wrap_cell("weight: 80   % total: 0.80"),
            vec!["weight: 80   % total: 0.80"]
        );
        // glooctl separates upstream group destinations with a "\n" cell: two empty lines.
        assert_eq!(wrap_cell("\n"), vec!["", ""]);
        assert_eq!(wrap_cell(""), vec![""]);
    }

    #[test]
    fn renders_borders_centred_headers_and_left_cells() {
        let mut table = Table::new(&["Upstream Group", "status", "total weight"]);
        table.row(vec![
            "upstreamgroup-gateway".into(),
            "Accepted".into(),
            "100".into(),
        ]);
        table.row(vec![String::new(), String::new(), String::new()]);
        assert_eq!(
            table.render(),
            "\
+-----------------------+----------+--------------+
|    UPSTREAM GROUP     |  STATUS  | TOTAL WEIGHT |
+-----------------------+----------+--------------+
| upstreamgroup-gateway | Accepted | 100          |
|                       |          |              |
+-----------------------+----------+--------------+
"
        );
    }
}

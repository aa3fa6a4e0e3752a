//! Comparing a unit test's expected and actual rows as multisets, and the
//! diff printed when they differ.

use std::collections::BTreeMap;

/// The rows that differ between the expected and the actual multiset.
#[derive(Debug, Default, PartialEq)]
pub struct Diff {
    /// Expected, not returned (as often as they are missing).
    pub missing: Vec<Vec<String>>,
    /// Returned, not expected.
    pub unexpected: Vec<Vec<String>>,
}

/// Compares two multisets of rows.
pub fn diff(expected: &[Vec<String>], actual: &[Vec<String>]) -> Diff {
    let mut counts: BTreeMap<&Vec<String>, i64> = BTreeMap::new();
    for r in expected {
        *counts.entry(r).or_default() += 1;
    }
    for r in actual {
        *counts.entry(r).or_default() -= 1;
    }
    let mut d = Diff::default();
    for (row, n) in counts {
        for _ in 0..n.max(0) {
            d.missing.push(row.clone());
        }
        for _ in 0..(-n).max(0) {
            d.unexpected.push(row.clone());
        }
    }
    d
}

impl Diff {
    /// `N rows differ` and an aligned table: `-` expected and not returned,
    /// `+` returned and not expected.
    pub fn render(&self, header: &[String]) -> String {
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for r in self.missing.iter().chain(&self.unexpected) {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |mark: &str, cells: &[String]| -> String {
            let cols: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            format!("  {mark} | {}", cols.join(" | "))
                .trim_end()
                .to_string()
        };
        let mut out = vec![format!(
            "the output differs from expect: {} row{} missing, {} unexpected",
            self.missing.len(),
            if self.missing.len() == 1 { "" } else { "s" },
            self.unexpected.len()
        )];
        out.push(line(" ", header));
        for r in &self.missing {
            out.push(line("-", r));
        }
        for r in &self.unexpected {
            out.push(line("+", r));
        }
        out.push("  (- expected but not returned, + returned but not expected)".to_string());
        out.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn diff_compares_multisets() {
        let expected = vec![row(&["1", "10"]), row(&["1", "10"]), row(&["2", "5"])];
        let actual = vec![row(&["2", "5"]), row(&["1", "10"]), row(&["3", "null"])];
        let d = diff(&expected, &actual);
        assert_eq!(d.missing, vec![row(&["1", "10"])]);
        assert_eq!(d.unexpected, vec![row(&["3", "null"])]);
        assert_eq!(diff(&expected, &expected), Diff::default());
    }

    /// A failing comparison reads as a table of the rows that differ.
    #[test]
    fn a_failure_prints_a_readable_diff() {
        let d = diff(
            &[row(&["1", "ann", "10"]), row(&["2", "bob", "5"])],
            &[row(&["1", "ann", "12"]), row(&["2", "bob", "5"])],
        );
        let header = row(&["customer_id", "name", "total"]);
        assert_eq!(
            d.render(&header),
            "the output differs from expect: 1 row missing, 1 unexpected\n\
             \x20   | customer_id | name | total\n\
             \x20 - | 1           | ann  | 10\n\
             \x20 + | 1           | ann  | 12\n\
             \x20 (- expected but not returned, + returned but not expected)"
        );
    }
}

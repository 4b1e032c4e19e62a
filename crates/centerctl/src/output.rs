//! Human tables (NAME first, aligned columns) and JSON output.

use std::io::Write;

/// Prints rows as an aligned table with a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    text(&render_table(header, rows))
}

/// Rows as an aligned table with a header, one line each.
pub fn render_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// Prints text as it is.
pub fn text(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Prints one JSON document on its own line.
pub fn json(value: &serde_json::Value) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{value}")?;
    out.flush()
}

/// How long before `now` the time `ms` was (both in ms since the Unix
/// epoch), for humans.
pub fn ago(now: u64, ms: u64) -> String {
    format!("{}s ago", now.saturating_sub(ms) / 1000)
}

/// The clock, in ms since the Unix epoch, for [`ago`].
pub fn now_ms() -> u64 {
    center_proto::Timestamp::now().as_millis()
}

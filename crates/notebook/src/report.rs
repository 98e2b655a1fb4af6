//! Rendering an executed notebook for the audit trail: inputs, outputs and per-cell
//! timing as self-contained HTML or Markdown.
//!
//! Rich HTML and JavaScript outputs are shown as their `text/plain` form rather than
//! embedded, so a report never runs code from a notebook in the reader's browser.

use serde_json::Value;

use crate::document;
use crate::redact::strip_ansi;

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// A self-contained HTML page.
    Html,
    /// Markdown.
    Md,
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn text_of(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => String::new(),
    }
}

enum Piece {
    Text(String),
    Image(String, String),
}

fn output_pieces(out: &Value) -> Vec<Piece> {
    match out.get("output_type").and_then(Value::as_str) {
        Some("stream") => vec![Piece::Text(text_of(out.get("text")))],
        Some("error") => {
            let tb: Vec<String> = out
                .get("traceback")
                .and_then(Value::as_array)
                .map(|t| t.iter().filter_map(Value::as_str).map(strip_ansi).collect())
                .unwrap_or_default();
            let text = if tb.is_empty() {
                format!(
                    "{}: {}",
                    text_of(out.get("ename")),
                    text_of(out.get("evalue"))
                )
            } else {
                tb.join("\n")
            };
            vec![Piece::Text(text)]
        }
        Some("display_data" | "execute_result") => {
            let data = out.get("data");
            for mime in ["image/png", "image/jpeg"] {
                if let Some(img) = data.and_then(|d| d.get(mime)) {
                    let b64: String = text_of(Some(img)).split_whitespace().collect();
                    return vec![Piece::Image(mime.to_string(), b64)];
                }
            }
            vec![Piece::Text(text_of(data.and_then(|d| d.get("text/plain"))))]
        }
        _ => Vec::new(),
    }
}

fn timing(cell: &Value) -> String {
    let pm = cell.pointer("/metadata/papermill");
    let status = pm
        .and_then(|p| p.get("status"))
        .and_then(Value::as_str)
        .unwrap_or("-");
    match pm.and_then(|p| p.get("duration")).and_then(Value::as_f64) {
        Some(d) => format!("{status}, {:.3} s", d),
        None => status.to_string(),
    }
}

/// Each cell with the label a user sees: `cell N`, numbered from 1 over the cells of the
/// executed notebook as the log and the failure reason count them (the injected parameters
/// cell included), with papermill's error banner and anchor cells, which are added after
/// the run, unnumbered.
fn numbered(nb: &Value) -> impl Iterator<Item = (String, &Value)> {
    let mut n = 0;
    document::cells(nb).iter().map(move |cell| {
        if document::has_tag(cell, document::ERROR_MARKER_TAG) {
            ("papermill error marker".to_owned(), cell)
        } else {
            n += 1;
            (format!("cell {n}"), cell)
        }
    })
}

/// Render `nb` in `format`.
pub fn render(nb: &Value, format: ReportFormat) -> String {
    render_titled(nb, format, "-")
}

/// Render `nb` in `format`, titled `title` unless the notebook records its input path
/// (a notebook that never ran through papermill or Rota records none).
pub fn render_titled(nb: &Value, format: ReportFormat, title: &str) -> String {
    match format {
        ReportFormat::Html => render_html(nb, title),
        ReportFormat::Md => render_md(nb, title),
    }
}

fn summary(nb: &Value, title: &str) -> (String, String, String) {
    let pm = nb.pointer("/metadata/papermill");
    let s = |k: &str| {
        pm.and_then(|p| p.get(k))
            .map(|v| match v {
                Value::String(s) => s.clone(),
                Value::Null => "-".into(),
                other => other.to_string(),
            })
            .unwrap_or_else(|| "-".into())
    };
    let input = match s("input_path") {
        path if path == "-" => title.to_owned(),
        path => path,
    };
    (
        input,
        format!(
            "start {} · duration {} s · exception {}",
            s("start_time"),
            s("duration"),
            s("exception")
        ),
        pm.and_then(|p| p.get("parameters"))
            .map(|p| p.to_string())
            .unwrap_or_else(|| "{}".into()),
    )
}

fn render_html(nb: &Value, title: &str) -> String {
    let (input, line, params) = summary(nb, title);
    let mut h = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Notebook run</title>\n<style>\
body{font-family:sans-serif;max-width:60em;margin:auto}pre{background:#f6f6f6;padding:.5em;overflow-x:auto}\
.cell{border-top:1px solid #ccc;margin-top:1em}.meta{color:#666;font-size:.9em}.failed{color:#b00}\
</style></head><body>\n",
    );
    h.push_str(&format!(
        "<h1>{}</h1>\n<p class=\"meta\">{}</p>\n<p class=\"meta\">parameters: <code>{}</code></p>\n",
        escape_html(&input),
        escape_html(&line),
        escape_html(&params)
    ));
    for (label, cell) in numbered(nb) {
        let kind = document::cell_type(cell);
        let t = timing(cell);
        let class = if t.starts_with("failed") {
            "cell failed"
        } else {
            "cell"
        };
        let count = cell
            .get("execution_count")
            .and_then(Value::as_i64)
            .map(|c| format!(" In [{c}]"))
            .unwrap_or_default();
        h.push_str(&format!(
            "<div class=\"{class}\"><p class=\"meta\">{label} · {kind}{count} · {}</p>\n<pre>{}</pre>\n",
            escape_html(&t),
            escape_html(&document::source(cell))
        ));
        for out in cell
            .get("outputs")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            for piece in output_pieces(out) {
                match piece {
                    Piece::Text(t) => h.push_str(&format!("<pre>{}</pre>\n", escape_html(&t))),
                    Piece::Image(mime, b64) => h.push_str(&format!(
                        "<img src=\"data:{mime};base64,{}\">\n",
                        escape_html(&b64)
                    )),
                }
            }
        }
        h.push_str("</div>\n");
    }
    h.push_str("</body></html>\n");
    h
}

fn fence(s: &str) -> String {
    let mut ticks = "```".to_string();
    while s.contains(&ticks) {
        ticks.push('`');
    }
    format!("{ticks}\n{}\n{ticks}\n", s.trim_end_matches('\n'))
}

fn render_md(nb: &Value, title: &str) -> String {
    let (input, line, params) = summary(nb, title);
    let mut m = format!("# {input}\n\n{line}\n\nparameters: `{params}`\n");
    for (label, cell) in numbered(nb) {
        let kind = document::cell_type(cell);
        m.push_str(&format!("\n## {label} · {kind} · {}\n\n", timing(cell)));
        m.push_str(&fence(&document::source(cell)));
        for out in cell
            .get("outputs")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            for piece in output_pieces(out) {
                match piece {
                    Piece::Text(t) => {
                        m.push('\n');
                        m.push_str(&fence(&t));
                    }
                    Piece::Image(mime, b64) => {
                        m.push_str(&format!("\n![output](data:{mime};base64,{b64})\n"))
                    }
                }
            }
        }
    }
    m
}

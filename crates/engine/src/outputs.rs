//! Step outputs: `key=value` lines a step writes to the file named by `$ROTA_OUTPUT`.
//!
//! The format follows GitHub Actions' `$GITHUB_OUTPUT`: one `key=value` per line, or a
//! multi-line value as `key<<DELIMITER`, the value's lines, then `DELIMITER` alone.
//! Blank lines are ignored; anything else is reported so a typo does not vanish.

use std::collections::BTreeMap;
use std::path::Path;

/// Largest output file read; a step that writes more gets an error, not a huge run record.
pub const MAX_OUTPUT_BYTES: u64 = 1024 * 1024;

/// Outputs of one attempt, or why they could not be read; the file is removed once read.
///
/// Most steps never write their output file, so the common case costs one failed `open`:
/// no `stat` before it and no `unlink` after it.
pub fn take_outputs(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(error) => return Err(format!("cannot read $ROTA_OUTPUT: {error}")),
    };
    let read = read_capped(file);
    // The step is over; the file was only a channel for its outputs.
    let _ = std::fs::remove_file(path);
    parse_outputs(&String::from_utf8_lossy(&read?))
}

/// Reads an open output file, refusing one above [`MAX_OUTPUT_BYTES`] before reading it.
fn read_capped(mut file: std::fs::File) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let size = file
        .metadata()
        .map_err(|e| format!("cannot read $ROTA_OUTPUT: {e}"))?
        .len();
    if size > MAX_OUTPUT_BYTES {
        return Err(format!(
            "$ROTA_OUTPUT holds {size} bytes, more than the {MAX_OUTPUT_BYTES}-byte limit"
        ));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    // `take` holds the cap even if the step left a process behind that still appends.
    file.by_ref()
        .take(MAX_OUTPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read $ROTA_OUTPUT: {e}"))?;
    if bytes.len() as u64 > MAX_OUTPUT_BYTES {
        return Err(format!(
            "$ROTA_OUTPUT holds more than the {MAX_OUTPUT_BYTES}-byte limit"
        ));
    }
    Ok(bytes)
}

/// Parses the content of an output file.
pub fn parse_outputs(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut outputs = BTreeMap::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        let line_no = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        if let Some((key, delimiter)) = line.split_once("<<") {
            let key = checked_key(key, line_no)?;
            let mut value: Vec<&str> = Vec::new();
            let mut closed = false;
            for (_, body) in lines.by_ref() {
                if body == delimiter {
                    closed = true;
                    break;
                }
                value.push(body);
            }
            if !closed {
                return Err(format!(
                    "$ROTA_OUTPUT line {line_no}: `{key}<<{delimiter}` is never closed by `{delimiter}`"
                ));
            }
            outputs.insert(key, value.join("\n"));
        } else if let Some((key, value)) = line.split_once('=') {
            outputs.insert(checked_key(key, line_no)?, value.to_owned());
        } else {
            return Err(format!(
                "$ROTA_OUTPUT line {line_no}: expected `key=value` or `key<<DELIMITER`, found {line:?}"
            ));
        }
    }
    Ok(outputs)
}

fn checked_key(key: &str, line_no: usize) -> Result<String, String> {
    let valid = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        Ok(key.to_owned())
    } else {
        Err(format!(
            "$ROTA_OUTPUT line {line_no}: invalid output name {key:?} (letters, digits, _ and -)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taking_outputs_reads_then_removes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("step.1.output");
        assert_eq!(take_outputs(&path).unwrap(), BTreeMap::new());
        std::fs::write(&path, "a=1\n").unwrap();
        assert_eq!(take_outputs(&path).unwrap()["a"], "1");
        assert!(!path.exists());
    }

    #[test]
    fn an_output_file_over_the_limit_is_refused_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.output");
        let line = format!("k={}\n", "x".repeat(1023));
        std::fs::write(&path, line.repeat(1025)).unwrap();
        let error = take_outputs(&path).unwrap_err();
        assert!(error.contains("limit"), "{error}");
        assert!(!path.exists());
    }

    #[test]
    fn single_and_multi_line_values() {
        let outputs = parse_outputs("a=1\n\nb=x=y\nnotes<<EOF\nline 1\nline 2\nEOF\n").unwrap();
        assert_eq!(outputs["a"], "1");
        assert_eq!(outputs["b"], "x=y");
        assert_eq!(outputs["notes"], "line 1\nline 2");
    }

    #[test]
    fn malformed_lines_are_reported_with_their_number() {
        let error = parse_outputs("a=1\njunk\n").unwrap_err();
        assert!(error.contains("line 2"), "{error}");
        let error = parse_outputs("k<<END\nno end\n").unwrap_err();
        assert!(error.contains("never closed"), "{error}");
        let error = parse_outputs("bad key=1\n").unwrap_err();
        assert!(error.contains("invalid output name"), "{error}");
    }
}

//! Reading one line at either end of a log file without reading the rest:
//! what [`AuditLog::open_with`](super::AuditLog::open_with) needs to
//! continue a chain (the last record) and to name the log (the first).
//! Both stop after [`MAX_LINE_BYTES`], so a hostile file cannot make the
//! daemon read gigabytes into memory at startup.

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::MAX_LINE_BYTES;

/// Read in chunks of this size.
const CHUNK: u64 = 4096;

/// A line at one end of a file.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Line {
    /// The line's bytes, without its newline.
    Complete(Vec<u8>),
    /// The file does not end in a newline (a write was cut short).
    Unterminated,
    /// Longer than [`MAX_LINE_BYTES`].
    TooLong,
}

/// The last line of a non-empty file of `len` bytes, read backwards.
pub(super) fn last_line(file: &File, len: u64) -> std::io::Result<Line> {
    let mut end = [0u8];
    file.read_exact_at(&mut end, len - 1)?;
    if end[0] != b'\n' {
        return Ok(Line::Unterminated);
    }
    let mut line = Vec::new();
    let mut pos = len - 1;
    while pos > 0 {
        let start = pos.saturating_sub(CHUNK);
        let mut chunk = vec![0; (pos - start) as usize];
        file.read_exact_at(&mut chunk, start)?;
        let found = chunk.iter().rposition(|&b| b == b'\n');
        if let Some(i) = found {
            chunk.drain(..=i);
        }
        chunk.extend_from_slice(&line);
        line = chunk;
        if line.len() > MAX_LINE_BYTES {
            return Ok(Line::TooLong);
        }
        if found.is_some() {
            break;
        }
        pos = start;
    }
    Ok(Line::Complete(line))
}

/// The first line of a non-empty file of `len` bytes.
pub(super) fn first_line(file: &File, len: u64) -> std::io::Result<Line> {
    let mut line = Vec::new();
    let mut pos = 0;
    while pos < len {
        let mut chunk = vec![0; CHUNK.min(len - pos) as usize];
        file.read_exact_at(&mut chunk, pos)?;
        if let Some(i) = chunk.iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&chunk[..i]);
            return Ok(if line.len() > MAX_LINE_BYTES { Line::TooLong } else { Line::Complete(line) });
        }
        line.extend_from_slice(&chunk);
        if line.len() > MAX_LINE_BYTES {
            return Ok(Line::TooLong);
        }
        pos += chunk.len() as u64;
    }
    Ok(Line::Unterminated)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn file(bytes: &[u8]) -> (tempfile::NamedTempFile, u64) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        (f, bytes.len() as u64)
    }

    #[test]
    fn both_ends_across_chunks_and_the_bounds() {
        let long = "x".repeat(9000);
        let (f, len) = file(format!("{long}1\nmid\n{long}2\n").as_bytes());
        assert_eq!(first_line(f.as_file(), len).unwrap(), Line::Complete(format!("{long}1").into_bytes()));
        assert_eq!(last_line(f.as_file(), len).unwrap(), Line::Complete(format!("{long}2").into_bytes()));

        let (f, len) = file(b"only\n");
        assert_eq!(first_line(f.as_file(), len).unwrap(), Line::Complete(b"only".to_vec()));
        assert_eq!(last_line(f.as_file(), len).unwrap(), Line::Complete(b"only".to_vec()));

        let (f, len) = file(b"a\nb");
        assert_eq!(last_line(f.as_file(), len).unwrap(), Line::Unterminated);
        let (f, len) = file(b"no newline at all");
        assert_eq!(first_line(f.as_file(), len).unwrap(), Line::Unterminated);

        let huge = vec![b'y'; MAX_LINE_BYTES + 1];
        let (f, len) = file(&[huge.as_slice(), b"\n"].concat());
        assert_eq!(first_line(f.as_file(), len).unwrap(), Line::TooLong);
        assert_eq!(last_line(f.as_file(), len).unwrap(), Line::TooLong);
        let (f, len) = file(&[b"ok\n".as_slice(), &vec![b'y'; MAX_LINE_BYTES], b"\n"].concat());
        assert_eq!(first_line(f.as_file(), len).unwrap(), Line::Complete(b"ok".to_vec()));
        assert_eq!(last_line(f.as_file(), len).unwrap(), Line::Complete(vec![b'y'; MAX_LINE_BYTES]));
    }
}

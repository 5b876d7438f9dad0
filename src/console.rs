//! What kd-tui says on its standard output and standard error, written so that a reader who
//! leaves cannot end the program.
//!
//! Rust ignores SIGPIPE, so `println!` to a closed pipe panics: `kd-tui --batch … | head -2` then
//! died with exit 101 mid-run, leaving its lock and socket behind. A run's lines go through
//! [`say`] and [`note`], which drop what cannot be written: a status line nobody reads changes
//! no result. A command whose output *is* its result (`ls --json`, `presets NAME > my.toml`)
//! writes through [`emit`], which reports a failed write, a full disk say, and takes a reader
//! that leaves early as the end of what it wanted, as `head` means it.

use std::fmt::Display;
use std::io::{self, Write};

/// One line on standard output; dropped if it cannot be written.
pub fn say(line: impl Display) {
    let _ = writeln!(io::stdout().lock(), "{line}");
}

/// One line on standard error; dropped if it cannot be written.
pub fn note(line: impl Display) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// A command's output on standard output, as it is (no newline added), flushed. A closed pipe
/// is not an error: its reader has what it wanted.
pub fn emit(text: impl Display) -> io::Result<()> {
    written(io::stdout().lock(), text)
}

fn written(mut to: impl Write, text: impl Display) -> io::Result<()> {
    match write!(to, "{text}").and_then(|()| to.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that fails every write with one kind of error.
    struct Failing(io::ErrorKind);

    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(self.0))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_ends_the_output_quietly_and_other_failures_are_reported() {
        assert!(written(Failing(io::ErrorKind::BrokenPipe), "x").is_ok());
        let full = written(Failing(io::ErrorKind::StorageFull), "x").unwrap_err();
        assert_eq!(full.kind(), io::ErrorKind::StorageFull);
        let mut kept = Vec::new();
        written(&mut kept, format_args!("a {}\n", 1)).unwrap();
        assert_eq!(kept, b"a 1\n");
    }
}

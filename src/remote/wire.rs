//! What a client's lines may be, decided without I/O: the hello, then commands. Every field a
//! client sends is bounded before anything reaches the trainer.

use super::{Hello, MAX_LINE, VERSION};
use crate::protocol::Command;

/// Longest `key` of a `set` command.
pub const MAX_KEY: usize = 128;
/// Longest `value` of a `set` command.
pub const MAX_VALUE: usize = 1024;
/// Longest `reason` of a `stop` command.
pub const MAX_REASON: usize = 256;

/// Why a client's line is refused; its text is the error line the client gets.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LineError {
    #[error("line longer than {MAX_LINE} bytes")]
    TooLong,
    #[error("expected a hello line first: {0}")]
    NotHello(String),
    #[error(
        "this job speaks version {VERSION}; the client speaks {0} (same kd-tui on both sides?)"
    )]
    Version(u32),
    #[error("not a command: {0}")]
    NotCommand(String),
    #[error("not a command: `{field}` longer than {max} bytes")]
    FieldTooLong { field: &'static str, max: usize },
}

impl LineError {
    /// Whether the client can go on after this line (the stream is still in step).
    pub fn recoverable(&self) -> bool {
        !matches!(self, LineError::TooLong)
    }
}

/// The client's first line: a hello of this version.
pub fn parse_hello(line: &[u8]) -> Result<Hello, LineError> {
    if line.len() > MAX_LINE {
        return Err(LineError::TooLong);
    }
    match serde_json::from_slice::<Hello>(line) {
        Ok(h) if h.hello != "kd-tui" => Err(LineError::NotHello(format!(
            "`hello` must be \"kd-tui\" (got {:?})",
            truncated(&h.hello)
        ))),
        Ok(h) if h.version != VERSION => Err(LineError::Version(h.version)),
        Ok(h) => Ok(h),
        Err(e) => Err(LineError::NotHello(e.to_string())),
    }
}

/// A line after the hello: a command, or `None` for a blank line.
pub fn parse_command(line: &[u8]) -> Result<Option<Command>, LineError> {
    if line.len() > MAX_LINE {
        return Err(LineError::TooLong);
    }
    let line = line.trim_ascii();
    if line.is_empty() {
        return Ok(None);
    }
    let command = serde_json::from_slice::<Command>(line)
        .map_err(|e| LineError::NotCommand(e.to_string()))?;
    let too_long = |field, text: &str, max| {
        (text.len() > max).then_some(LineError::FieldTooLong { field, max })
    };
    let refused = match &command {
        Command::Set { key, value } => {
            too_long("key", key, MAX_KEY).or_else(|| too_long("value", value, MAX_VALUE))
        }
        Command::Stop { reason } => too_long("reason", reason, MAX_REASON),
        _ => None,
    };
    match refused {
        Some(e) => Err(e),
        None => Ok(Some(command)),
    }
}

/// A client's text, cut short for an error line.
fn truncated(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hellos_and_commands_are_checked_and_bounded() {
        assert!(parse_hello(br#"{"hello":"kd-tui","version":1}"#).is_ok());
        assert_eq!(
            parse_hello(br#"{"hello":"kd-tui","version":9}"#),
            Err(LineError::Version(9))
        );
        assert!(matches!(
            parse_hello(b"hello?"),
            Err(LineError::NotHello(_))
        ));
        assert_eq!(parse_command(b"  \r"), Ok(None));
        assert_eq!(
            parse_command(br#"{"command":"checkpoint"}"#),
            Ok(Some(Command::Checkpoint))
        );
        let long = format!(
            r#"{{"command":"set","key":"distill.alpha","value":"{}"}}"#,
            "9".repeat(MAX_VALUE + 1)
        );
        assert_eq!(
            parse_command(long.as_bytes()),
            Err(LineError::FieldTooLong {
                field: "value",
                max: MAX_VALUE
            })
        );
        assert_eq!(
            parse_command(&vec![b' '; MAX_LINE + 1]),
            Err(LineError::TooLong)
        );
    }
}

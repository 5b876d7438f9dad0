//! How a command ends: its exit code, and the failures that choose one.

use crate::console;
use std::fmt;

/// Exit code for a failure that is not the input's fault.
pub const EXIT_FAILED: i32 = 1;
/// Exit code for bad input (arguments, preset, data, run folder).
pub const EXIT_BAD_INPUT: i32 = 2;

/// Why a command did not succeed, as the user is told it (`kd-tui: ` goes before it when it is
/// printed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Input the command refuses: exit code 2.
    #[error("{0}")]
    BadInput(String),
    /// Anything else that went wrong: exit code 1.
    #[error("{0}")]
    Failed(String),
}

impl Failure {
    pub fn bad_input(message: impl fmt::Display) -> Failure {
        Failure::BadInput(message.to_string())
    }

    pub fn failed(message: impl fmt::Display) -> Failure {
        Failure::Failed(message.to_string())
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::BadInput(_) => EXIT_BAD_INPUT,
            Failure::Failed(_) => EXIT_FAILED,
        }
    }

    /// The same failure with `context: ` before its message, e.g. the file it concerns.
    pub fn within(self, context: impl fmt::Display) -> Failure {
        match self {
            Failure::BadInput(m) => Failure::BadInput(format!("{context}: {m}")),
            Failure::Failed(m) => Failure::Failed(format!("{context}: {m}")),
        }
    }

    /// Prints the failure on standard error; returns its exit code.
    pub fn report(&self) -> i32 {
        console::note(format_args!("kd-tui: {self}"));
        self.exit_code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_exit_code_and_keeps_its_kind_in_context() {
        assert_eq!(Failure::bad_input("x").exit_code(), 2);
        assert_eq!(Failure::failed("x").exit_code(), 1);
        let within = Failure::bad_input("not found").within("a.toml");
        assert_eq!(within, Failure::BadInput("a.toml: not found".into()));
        assert_eq!(within.to_string(), "a.toml: not found");
    }
}

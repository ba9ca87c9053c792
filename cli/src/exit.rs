//! Exit statuses: 0 success, 1 unmet expectation or card/reader failure, 2 usage error.

use std::process::ExitCode;

/// Why a command failed, and with which exit status.
#[derive(Debug)]
pub struct Failure {
    /// 1 or 2.
    pub code: u8,
    /// What to print (`None`: already reported, e.g. an unmet expectation).
    pub error: Option<anyhow::Error>,
}

impl Failure {
    /// Exit status 2: the user asked for something that cannot be done as asked.
    pub fn usage(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: 2,
            error: Some(error.into()),
        }
    }

    /// Exit status 1: the card, reader or system failed.
    pub fn card(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: 1,
            error: Some(error.into()),
        }
    }

    /// Exit status 1 with nothing more to say (the output already showed what went wrong).
    pub fn unmet() -> Self {
        Failure {
            code: 1,
            error: None,
        }
    }

    /// Prints the error (if any) and gives the exit status.
    pub fn report(self) -> ExitCode {
        if let Some(e) = &self.error {
            eprintln!("citizencard: error: {}", cause_chain(e));
        }
        ExitCode::from(self.code)
    }
}

/// The error and every cause under it, `: `-separated, each said once: many of our messages
/// already quote their cause (`"{path}: {source}"`), and such a cause is not repeated.
pub fn cause_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

impl From<host_lib::transport::Error> for Failure {
    fn from(e: host_lib::transport::Error) -> Self {
        if e.is_usage() {
            Failure::usage(e)
        } else {
            Failure::card(e)
        }
    }
}

impl From<host_lib::service::ServiceError> for Failure {
    fn from(e: host_lib::service::ServiceError) -> Self {
        use host_lib::registry::RegistryError;
        use host_lib::service::ServiceError;
        match e {
            ServiceError::Transport(t) => Failure::from(t),
            ServiceError::Registry(
                RegistryError::CardNumber(_)
                | RegistryError::Config { .. }
                | RegistryError::NoOperator,
            ) => Failure::usage(e),
            e if e.is_usage() => Failure::usage(e),
            e => Failure::card(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error with a source it does not quote.
    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("the registry could not be opened")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    /// An error that quotes its source.
    #[derive(Debug)]
    struct Quoting(std::io::Error);
    impl std::fmt::Display for Quoting {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "reading a.csv: {}", self.0)
        }
    }
    impl std::error::Error for Quoting {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn every_cause_is_printed_once() {
        let inner = std::io::Error::other("disk on fire");
        let e = anyhow::Error::new(Outer(inner)).context("issuing W00000018");
        assert_eq!(
            cause_chain(&e),
            "issuing W00000018: the registry could not be opened: disk on fire"
        );
        let inner = std::io::Error::other("disk on fire");
        let e = anyhow::Error::new(Quoting(inner));
        assert_eq!(cause_chain(&e), "reading a.csv: disk on fire");
    }
}

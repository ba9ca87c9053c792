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
            // Our messages already name their cause; the `{:#}` chain would repeat it.
            eprintln!("citizencard: error: {e}");
        }
        ExitCode::from(self.code)
    }
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

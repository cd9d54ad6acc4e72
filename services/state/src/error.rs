//! Service errors and their gRPC status codes, mapped in one place.

use tonic::{Code, Status};

use crate::{encode::EncodeError, store::StoreError};

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum StateServiceError {
    /// The request is malformed; `field` names the offending field.
    #[error("{field}: {problem}")]
    InvalidArgument {
        /// The field path, e.g. `events[3].order.quantity`.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The consensus service answered with an error.
    #[error("consensus: {message}")]
    Consensus {
        /// Its code.
        code: Code,
        /// Its message.
        message: String,
    },
    /// Events could not be encoded as transactions.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The requested epoch is no longer retained.
    #[error("epoch {requested} is no longer retained (oldest retained: {oldest})")]
    OutOfRange {
        /// Requested.
        requested: u64,
        /// Oldest retained.
        oldest: u64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The market state actor is gone (the service is stopping).
    #[error("the market state is unavailable: {0}")]
    Stopping(#[from] actix::MailboxError),
}

impl StateServiceError {
    /// A malformed field.
    pub fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// The gRPC code: consensus back-pressure and unavailability pass through, transport
    /// failures and timeouts become `UNAVAILABLE`.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument { .. } => Code::InvalidArgument,
            Self::Consensus { code, .. } => match code {
                Code::ResourceExhausted => Code::ResourceExhausted,
                Code::InvalidArgument => Code::InvalidArgument,
                Code::Unavailable
                | Code::DeadlineExceeded
                | Code::Cancelled
                | Code::Unknown
                | Code::Aborted => Code::Unavailable,
                _ => Code::Internal,
            },
            Self::Encode(_) | Self::Store(_) => Code::Internal,
            Self::OutOfRange { .. } => Code::OutOfRange,
            Self::Stopping(_) => Code::Unavailable,
        }
    }
}

impl From<Status> for StateServiceError {
    fn from(status: Status) -> Self {
        Self::Consensus {
            code: status.code(),
            message: status.message().to_owned(),
        }
    }
}

impl From<StateServiceError> for Status {
    fn from(e: StateServiceError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consensus_codes_pass_through_or_become_unavailable() {
        let code = |c| StateServiceError::from(Status::new(c, "x")).code();
        assert_eq!(code(Code::ResourceExhausted), Code::ResourceExhausted);
        assert_eq!(code(Code::Unavailable), Code::Unavailable);
        assert_eq!(code(Code::DeadlineExceeded), Code::Unavailable);
        assert_eq!(code(Code::InvalidArgument), Code::InvalidArgument);
        assert_eq!(code(Code::Unimplemented), Code::Internal);
        let status = Status::from(StateServiceError::invalid("events[2].source", "bad"));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "events[2].source: bad");
    }
}

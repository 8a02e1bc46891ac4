//! The errors a reconcile can end with; all of them are retried (see `reconcile::error_policy`).

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    #[error("the Workflow changed since it was read; reconciling the newer version")]
    Conflict,
    #[error("cannot encode the status: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("the Workflow has no {0}")]
    Incomplete(&'static str),
    /// The status to write would not fit under the object limit: the Workflow fails instead.
    #[error("{0}")]
    StatusTooLarge(String),
    /// The API server did not answer in time (hung, or cut off): the reconcile was given up,
    /// which is as safe as a crash at that point, and is retried.
    #[error("the reconcile took longer than {0:?}: the API server is not answering")]
    TimedOut(std::time::Duration),
}

impl Error {
    /// A short, bounded word for the errors metric.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Conflict => "conflict",
            Error::Encode(_) => "encode",
            Error::Incomplete(_) => "incomplete",
            Error::StatusTooLarge(_) => "status_too_large",
            Error::TimedOut(_) => "timeout",
        }
    }
}

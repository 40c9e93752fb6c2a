//! Why a schemes file cannot be served (at start, or at a reload).

/// A schemes file that cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The file could not be read or parsed.
    #[error(transparent)]
    File(#[from] crate::scheme_file::SchemeFileError),
    /// A scheme without a `name` cannot be addressed.
    #[error(
        "scheme #{0} has no `name`; every served scheme needs one (it is the {{scheme}} in /v1/route/{{scheme}})"
    )]
    Unnamed(usize),
    /// The `[server]` table cannot be used.
    #[error("[server] {0}")]
    Server(String),
    /// At a reload, a new or changed scheme cannot be read.
    #[error("scheme `{name}`: {problem}")]
    Scheme {
        /// The scheme.
        name: String,
        /// What is wrong (never a value of a secret).
        problem: String,
    },
    /// The service was not loaded from a file, so there is nothing to reload.
    #[error("this service was not loaded from a file")]
    NoSource,
}

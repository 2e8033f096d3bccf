//! JSON logs on stdout (`RUST_LOG` filters). The `access` line of each request is written by
//! [`crate::accesslog`] in the same shape.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber. Idempotent.
pub fn init_subscriber(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_span_list(false)
        .flatten_event(true)
        .with_writer(std::io::stdout)
        .try_init();
}

//! Opening the node's message store (`[store]`) for the broker: persistent queue messages on
//! disk (`stompbox-store`, `docs/persistence.md`).

use std::sync::Arc;

use stompbox_store::{DiskStore, OpenError};

use crate::{Error, ServerConfig};

/// Opens the data directory when `store.enabled`. A directory that cannot be created or
/// written leaves the node without a store, with a warning (a read-only container still
/// serves); one that another process holds, or whose files the engine cannot read, is an
/// error: two nodes must not share one, and stored messages must not be ignored silently.
pub(crate) fn open(config: &ServerConfig) -> Result<Option<Arc<DiskStore>>, Error> {
    let store = &config.store;
    if !store.enabled {
        return Ok(None);
    }
    match DiskStore::open(&store.data_dir, store.options()) {
        Ok(opened) => {
            tracing::info!(data_dir = %store.data_dir.display(), "message store open");
            Ok(Some(opened))
        }
        Err(OpenError::Io { path, source }) => {
            tracing::warn!(
                data_dir = %path.display(),
                error = %source,
                "cannot use the data directory: persistent messages are kept in memory only \
                 (set store.data_dir to a writable directory)"
            );
            Ok(None)
        }
        Err(e) => Err(Error::InvalidConfig {
            key: "store.data_dir".into(),
            reason: e.to_string(),
        }),
    }
}

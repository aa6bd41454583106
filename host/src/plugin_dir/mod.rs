//! The plugin directory: plugins that come, change and go while the host
//! runs.
//!
//! Each plugin is a manifest `NAME.toml` ([`manifest`]) beside its
//! component. The directory is watched (inotify and friends, through the
//! notify crate) and read again periodically, because network filesystems do
//! not always deliver change notices; hosts mounting the same directory thus
//! converge on what it holds. Notices are debounced, so a file still being
//! written is read once it has been quiet for a moment; a file read while
//! incomplete fails to load and the next notice tries again. Writers should
//! still write a temporary file and rename it into place, component first
//! and manifest last: the manifest is the commit point.

pub mod check;
pub mod loader;
pub mod manifest;
mod registry;

use std::sync::Arc;
use std::time::Duration;

use notify::{Event, EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use registry::{PluginRegistry, RegistryError, ReloadError};

/// Longest a burst of change notices may postpone reading the directory, so
/// that a directory that never goes quiet is still read.
const MAX_SETTLE: Duration = Duration::from_secs(5);

/// Applies the directory's changes to `registry` until `shutdown`: after
/// each burst of change notices has settled for `debounce`, and every
/// `rescan_interval` in any case.
pub fn watch(
    registry: Arc<PluginRegistry>,
    debounce: Duration,
    rescan_interval: Duration,
    shutdown: CancellationToken,
) {
    let (notices, mut received) = unbounded_channel();
    // Kept by the task so the channel stays open even without a watcher.
    let keep_open = notices.clone();
    let dir = registry.dir().to_owned();
    let watcher = notify::recommended_watcher(move |event: notify::Result<Event>| match event {
        Ok(event) if is_change(&event) => {
            let _ = notices.send(());
        }
        Ok(_) => {}
        Err(error) => {
            tracing::warn!(%error, "plugin directory watch error; the periodic rescan covers it")
        }
    })
    .and_then(|mut watcher| {
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        Ok(watcher)
    });
    let watcher = match watcher {
        Ok(watcher) => Some(watcher),
        Err(error) => {
            tracing::warn!(dir = %dir.display(), %error, "cannot watch the plugin directory; relying on the periodic rescan");
            None
        }
    };
    tokio::spawn(async move {
        // Dropping the watcher ends the notices.
        let _watcher = watcher;
        let _keep_open = keep_open;
        let mut rescan =
            tokio::time::interval_at(Instant::now() + rescan_interval, rescan_interval);
        rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = rescan.tick() => {}
                _ = received.recv() => settle(&mut received, debounce).await,
            }
            if shutdown.is_cancelled() {
                return;
            }
            registry.sync().await;
            rescan.reset();
        }
    });
}

/// Waits until no notice has come for `quiet` (at most [`MAX_SETTLE`]).
async fn settle(received: &mut UnboundedReceiver<()>, quiet: Duration) {
    let deadline = Instant::now() + MAX_SETTLE;
    while let Ok(Some(())) = tokio::time::timeout(quiet, received.recv()).await {
        if Instant::now() >= deadline {
            return;
        }
    }
}

/// Whether a notice may mean a plugin changed: anything but a mere read
/// (the host's own reads would wake it). Hidden files count: some volumes
/// (Kubernetes config maps) change only a hidden symlink.
fn is_change(event: &Event) -> bool {
    !matches!(event.kind, EventKind::Access(_))
}

//! The CVDF mirror as a source: already-trimmed clips in tarballs on S3, downloaded, verified, placed.
//!
//! [`fetch`] reads the path lists of the chosen splits, downloads tarballs in parallel with Range resume,
//! extracts the wanted clips whatever the tarball's layout, verifies each like a YouTube clip and renames
//! it to its destination, reporting [`MirrorEvent`]s as it goes.

mod claims;
mod download;
mod extract;
mod fetch;
mod lists;
mod report;
mod shared;
mod source;
mod tarball;
mod types;
mod verify;

pub use fetch::fetch;
pub use lists::{list_tarballs, rebase_url, Tarball};
pub use report::{MirrorEvent, MirrorStats, Wanted, CORRUPT, SHORT_TOLERANCE};
pub use source::{
    annotations_url, mirror_split, path_list_url, MirrorConfig, MirrorDataset, UnknownDataset, UnknownSplit,
    DEFAULT_BASE_URL,
};
pub use verify::ToolError;

//! Reading the files briefing is given (manifests, Markdown, stylesheets,
//! configs, recipient lists): regular files only, each under a size limit,
//! and inside a folder when a contributor chose the path. A manifest may
//! come from a pull request; it must not read `/etc/passwd` into every
//! subscriber's inbox, nor `/dev/zero` until memory runs out.

use std::fs::File;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// Largest issue manifest read.
pub const MANIFEST_LIMIT: u64 = 1024 * 1024;
/// Largest Markdown body file or stylesheet read (the stylesheet must then
/// fit Gmail's 16 KB).
pub const BODY_FILE_LIMIT: u64 = 1024 * 1024;
/// Largest config file read.
pub const CONFIG_LIMIT: u64 = 256 * 1024;
/// Longest line of a recipient list or suppression export.
pub const CSV_LINE_LIMIT: usize = 64 * 1024;

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Not a regular file: a device, a FIFO, a folder.
    #[error("{} is not a regular file, expected a text file", .0.display())]
    NotRegular(PathBuf),
    /// Larger than the limit for its kind.
    #[error("{} is larger than {} KiB, the limit for this kind of file", .path.display(), .limit / 1024)]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit in bytes.
        limit: u64,
    },
    /// Outside the folder it must stay in.
    #[error("{} is outside {}, expected a file inside that folder", .path.display(), .boundary.display())]
    Outside {
        /// The file as written.
        path: PathBuf,
        /// The folder.
        boundary: PathBuf,
    },
    /// The system refused.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Reads a regular file of at most `limit` bytes.
pub fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, InputError> {
    let io = |source| InputError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(InputError::NotRegular(path.to_path_buf()));
    }
    if meta.len() > limit {
        return Err(too_large(path, limit));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // The file may grow while we read: never take more than the limit.
    file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(path, limit));
    }
    Ok(bytes)
}

fn too_large(path: &Path, limit: u64) -> InputError {
    InputError::TooLarge {
        path: path.to_path_buf(),
        limit,
    }
}

/// Reads a regular file as UTF-8 text of at most `limit` bytes; invalid
/// UTF-8 is an I/O error of kind `InvalidData`.
pub fn read_text(path: &Path, limit: u64) -> Result<String, InputError> {
    let bytes = read_limited(path, limit)?;
    String::from_utf8(bytes).map_err(|e| InputError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })
}

/// Checks, without touching the disk, that a relative path as written
/// stays inside the folder it is relative to (no root, no `..` above it).
pub fn stays_inside(relative: &Path) -> bool {
    let mut depth = 0usize;
    for c in relative.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// Checks that `path`, with every symbolic link followed, lies inside one
/// of the `boundaries`.
pub fn within(path: &Path, boundaries: &[&Path]) -> Result<(), InputError> {
    let real = path.canonicalize().map_err(|source| InputError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let inside = boundaries
        .iter()
        .filter_map(|b| b.canonicalize().ok())
        .any(|b| real.starts_with(b));
    if inside {
        return Ok(());
    }
    Err(InputError::Outside {
        path: path.to_path_buf(),
        boundary: boundaries
            .first()
            .map(|b| b.to_path_buf())
            .unwrap_or_default(),
    })
}

/// A reader that fails on a line longer than `limit` bytes, so one
/// endless line cannot fill memory.
pub struct LineLimit<R> {
    inner: R,
    limit: usize,
    run: usize,
}

impl<R> LineLimit<R> {
    /// Wraps `inner`.
    pub fn new(inner: R, limit: usize) -> Self {
        Self {
            inner,
            limit,
            run: 0,
        }
    }
}

impl<R: Read> Read for LineLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            self.run = if b == b'\n' { 0 } else { self.run + 1 };
            if self.run > self.limit {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("a line is longer than {} KiB", self.limit / 1024),
                ));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_large_files_are_refused() {
        assert!(matches!(
            read_limited(Path::new("/dev/zero"), 1024),
            Err(InputError::NotRegular(_))
        ));
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.md");
        std::fs::write(&big, vec![b'a'; 2048]).unwrap();
        assert!(matches!(
            read_limited(&big, 1024),
            Err(InputError::TooLarge { limit: 1024, .. })
        ));
        assert_eq!(read_limited(&big, 4096).unwrap().len(), 2048);
    }

    #[test]
    fn relative_paths_may_not_climb_out() {
        assert!(stays_inside(Path::new("articles/a.md")));
        assert!(stays_inside(Path::new("articles/../a.md")));
        assert!(!stays_inside(Path::new("../a.md")));
        assert!(!stays_inside(Path::new("a/../../etc/passwd")));
        assert!(!stays_inside(Path::new("/etc/passwd")));
    }

    #[test]
    fn symbolic_links_out_of_the_folder_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let issue = dir.path().join("issue");
        std::fs::create_dir(&issue).unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let secret = elsewhere.path().join("secret.txt");
        std::fs::write(&secret, "not for the issue").unwrap();
        std::os::unix::fs::symlink(&secret, issue.join("x.md")).unwrap();
        std::fs::write(issue.join("ok.md"), "hi").unwrap();
        assert!(within(&issue.join("ok.md"), &[&issue]).is_ok());
        assert!(matches!(
            within(&issue.join("x.md"), &[&issue]),
            Err(InputError::Outside { .. })
        ));
    }

    #[test]
    fn an_endless_line_stops_the_reader() {
        let mut r = LineLimit::new(std::io::repeat(b'x'), 1024);
        let mut sink = Vec::new();
        assert!(r.read_to_end(&mut sink).is_err());
        assert!(sink.len() < 64 * 1024);
    }
}

//! Writing result files: through a temporary sibling and a rename, so a failure never leaves a
//! partial file. Shared by the CLI (`src/io.rs`, `src/outputs.rs` stage with the same naming)
//! and the Python package.

use std::path::{Path, PathBuf};

/// The temporary sibling a destination is staged in: `.NAME.tmpPID` in the same folder.
pub fn temp_path(dest: &Path) -> Option<PathBuf> {
    let name = dest.file_name()?;
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Some(dir.join(format!(".{}.tmp{}", name.to_string_lossy(), std::process::id())))
}

/// Writes `bytes` to `path` atomically (temporary sibling, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_path(path).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{}: output path has no file name", path.display()),
        )
    })?;
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

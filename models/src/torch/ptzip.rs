//! Integrity check of PyTorch `.pt` files (`torch.save` zip archives) before libtorch reads
//! them: libtorch does not verify the CRC-32 of the entries, so a file damaged in transfer
//! would load with silently wrong weights. Every entry is read through the `zip` crate, which
//! checks each entry's CRC-32 and the archive structure.

use std::io::Read;
use std::path::Path;

use crate::ImportError;

/// Reads every entry of the zip at `path`, failing on a damaged archive or a CRC mismatch.
pub fn check_zip_integrity(path: &Path) -> Result<(), ImportError> {
    let corrupt = |reason: String| ImportError::Corrupt {
        path: path.display().to_string(),
        format: "PyTorch zip",
        reason,
    };
    let file = std::fs::File::open(path).map_err(|source| ImportError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| corrupt(format!("damaged zip archive: {e}")))?;
    let mut buf = vec![0u8; 1 << 16];
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| corrupt(format!("zip entry {i}: {e}")))?;
        let name = entry.name().to_string();
        loop {
            match entry.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Err(corrupt(format!("entry `{name}`: {e}"))),
            }
        }
    }
    Ok(())
}

//! All-or-nothing command outputs.
//!
//! A command names every input and every destination before it does any work
//! ([`Outputs::input`], [`Outputs::claim`]): a destination that is one of the inputs (the same
//! file, through any path, link or hard link), that is claimed twice, whose folder cannot be
//! created, or where no file can be written is refused right away, with nothing computed and
//! nothing written. Results are then staged as temporary files beside their destinations
//! ([`Outputs::write`]) and renamed into place together by [`Outputs::commit`] once the whole
//! command has succeeded; dropping an uncommitted `Outputs` removes the staged files. So a
//! failing command leaves no partial output and never overwrites an input.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};

/// Identity of an existing file or folder: device and inode on Unix, the canonical path
/// elsewhere.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Identity {
    #[cfg(unix)]
    Inode(u64, u64),
    #[cfg_attr(unix, allow(dead_code))]
    Path(PathBuf),
}

fn identity(p: &Path) -> Option<Identity> {
    let md = std::fs::metadata(p).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let _ = &md;
        Some(Identity::Inode(md.dev(), md.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = md;
        std::fs::canonicalize(p).ok().map(Identity::Path)
    }
}

/// The folder a destination is written in (`.` for a bare file name).
fn parent_of(p: &Path) -> &Path {
    p.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// The temporary sibling a destination is staged in.
fn temp_for(dest: &Path) -> anyhow::Result<PathBuf> {
    spikerc_models::files::temp_path(dest)
        .with_context(|| format!("{}: output path has no file name", dest.display()))
}

/// The inputs and destinations of one command; see the module docs.
#[derive(Default)]
pub struct Outputs {
    inputs: Vec<(PathBuf, Identity)>,
    /// Input folders: a destination inside one is checked against the folder's files too.
    claimed: Vec<PathBuf>,
    staged: Vec<(PathBuf, PathBuf)>,
}

impl Outputs {
    pub fn new() -> Outputs {
        Outputs::default()
    }

    /// Registers an input file or folder (missing paths are ignored here: reading them fails
    /// with its own message).
    pub fn input(&mut self, p: &Path) -> &mut Outputs {
        if let Some(id) = identity(p) {
            self.inputs.push((p.to_path_buf(), id));
        }
        self
    }

    /// The input that `p` is, if any.
    fn input_at(&self, p: &Path) -> Option<&Path> {
        let id = identity(p)?;
        self.inputs
            .iter()
            .find(|(_, i)| *i == id)
            .map(|(q, _)| q.as_path())
    }

    /// Claims `dest` (a file to write; `what` names it in messages, e.g. `--report`) before
    /// the work: refuses an input, a second claim of the same file, an existing folder, and a
    /// folder that cannot be created or written.
    pub fn claim(&mut self, dest: &Path, what: &str) -> anyhow::Result<()> {
        if let Some(input) = self.input_at(dest) {
            bail!(
                "{}: {what} is the input {} itself; refusing to overwrite an input (choose another output path)",
                dest.display(),
                input.display()
            );
        }
        if dest.is_dir() {
            bail!("{}: {what} is an existing directory, expected a file path", dest.display());
        }
        let norm = normalise(dest);
        if self.claimed.iter().any(|c| normalise(c) == norm) {
            bail!("{}: {what} is also another output of this command", dest.display());
        }
        let dir = parent_of(dest);
        ensure_dir(dir, what)?;
        // Probe: create and remove the temporary file, so an unwritable folder fails now.
        let tmp = temp_for(dest)?;
        std::fs::write(&tmp, b"").with_context(|| {
            format!("{}: cannot write {what} in folder {}", dest.display(), dir.display())
        })?;
        let _ = std::fs::remove_file(&tmp);
        self.claimed.push(dest.to_path_buf());
        Ok(())
    }

    /// Claims a destination folder (e.g. `run DIR --output OUT`): refuses an input folder,
    /// an existing file, and creates the folder now.
    pub fn claim_dir(&mut self, dest: &Path, what: &str) -> anyhow::Result<()> {
        if let Some(input) = self.input_at(dest) {
            bail!(
                "{}: {what} is the input {} itself; refusing to overwrite inputs (choose another output folder)",
                dest.display(),
                input.display()
            );
        }
        if dest.exists() && !dest.is_dir() {
            bail!("{}: {what} exists and is not a directory", dest.display());
        }
        ensure_dir(dest, what)
    }

    /// Checks a destination folder that another writer replaces atomically (a deployment
    /// directory): not an input, not an existing file, and its parent folder exists or is
    /// created now. The folder itself is not created.
    pub fn claim_replaced_dir(&mut self, dest: &Path, what: &str) -> anyhow::Result<()> {
        if let Some(input) = self.input_at(dest) {
            bail!(
                "{}: {what} is the input {} itself; refusing to overwrite an input",
                dest.display(),
                input.display()
            );
        }
        if dest.exists() && !dest.is_dir() {
            bail!("{}: {what} exists and is not a directory", dest.display());
        }
        if dest.file_name().is_none() {
            bail!("{}: {what} has no directory name", dest.display());
        }
        ensure_dir(parent_of(dest), what)
    }

    /// Stages the contents of a claimed destination.
    pub fn write(&mut self, dest: &Path, bytes: &[u8]) -> anyhow::Result<()> {
        if !self.claimed.iter().any(|c| c == dest) {
            // A destination the command did not claim up front: claim it now (directory
            // runs name their per-file outputs as they go).
            self.claim(dest, "output")?;
        }
        let tmp = temp_for(dest)?;
        std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", dest.display()))?;
        self.staged.push((tmp, dest.to_path_buf()));
        Ok(())
    }

    /// Renames every staged file into place.
    pub fn commit(mut self) -> anyhow::Result<()> {
        let staged = std::mem::take(&mut self.staged);
        for (i, (tmp, dest)) in staged.iter().enumerate() {
            if let Err(e) = std::fs::rename(tmp, dest) {
                for (t, _) in &staged[i..] {
                    let _ = std::fs::remove_file(t);
                }
                return Err(e).with_context(|| format!("writing {}", dest.display()));
            }
        }
        Ok(())
    }
}

impl Drop for Outputs {
    fn drop(&mut self) {
        for (tmp, _) in &self.staged {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// A path with `.` components dropped, for comparing claims of files that do not exist yet.
fn normalise(p: &Path) -> PathBuf {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    };
    abs.components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

/// Creates `dir` (and its parents) unless it exists.
fn ensure_dir(dir: &Path, what: &str) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if dir.exists() {
        bail!("{}: the folder for {what} exists and is not a directory", dir.display());
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{}: cannot create the folder for {what}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_an_input_through_another_path_and_a_hard_link() {
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("a.png");
        std::fs::write(&input, b"x").unwrap();
        let link = d.path().join("b.png");
        std::fs::hard_link(&input, &link).unwrap();
        let mut o = Outputs::new();
        o.input(&input);
        let other = d.path().join(".").join("a.png");
        for dest in [&input, &other, &link] {
            let e = o.claim(dest, "--output").unwrap_err().to_string();
            assert!(e.contains("refusing to overwrite an input"), "{e}");
        }
        assert_eq!(std::fs::read(&input).unwrap(), b"x");
    }

    #[test]
    fn stages_and_commits_all_or_nothing() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("new/sub/a.json"), d.path().join("b.json"));
        {
            let mut o = Outputs::new();
            o.claim(&a, "--report").unwrap();
            o.claim(&b, "--output").unwrap();
            assert!(d.path().join("new/sub").is_dir(), "the folder is made before the work");
            o.write(&a, b"1").unwrap();
            // dropped without commit: nothing stays
        }
        assert!(!a.exists() && !b.exists());
        assert_eq!(std::fs::read_dir(d.path().join("new/sub")).unwrap().count(), 0);
        let mut o = Outputs::new();
        o.claim(&a, "--report").unwrap();
        o.claim(&b, "--output").unwrap();
        o.write(&a, b"1").unwrap();
        o.write(&b, b"2").unwrap();
        o.commit().unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), b"1");
        assert_eq!(std::fs::read(&b).unwrap(), b"2");
    }

    #[test]
    fn refuses_double_claims_and_unwritable_folders() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.json");
        let mut o = Outputs::new();
        o.claim(&a, "--report").unwrap();
        assert!(o.claim(&d.path().join("./a.json"), "--stats").unwrap_err().to_string().contains("also another output"));
        let file = d.path().join("f");
        std::fs::write(&file, b"").unwrap();
        let e = o.claim(&file.join("x.json"), "--stats").unwrap_err().to_string();
        assert!(e.contains("exists and is not a directory"), "{e}");
        assert!(o.claim(d.path(), "--output").unwrap_err().to_string().contains("existing directory"));
    }
}

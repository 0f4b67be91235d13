//! A node's data dir is its own: the directory and everything in it are
//! readable by the node's user only (0700 and 0600), whatever the umask,
//! and secrets kept there (the cluster key) are written whole or not at
//! all.
use std::io::Write;
use std::path::{Path, PathBuf};

/// Make `dir` (created if missing) and what is in it private to the
/// node's user: the directory and its subdirectories 0700, its files 0600.
/// One level deep: a data dir holds its files directly (and the embedded
/// archive keeps its own file private), and a data dir pointed at a shared
/// directory by mistake does not have a whole tree changed under it.
/// Returns what it had to tighten (a data dir made by an older release, or
/// under a loose umask). Symbolic links are left alone.
pub fn make_private(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut tightened = Vec::new();
    tighten(dir, &mut tightened)?;
    for entry in std::fs::read_dir(dir)? {
        tighten(&entry?.path(), &mut tightened)?;
    }
    Ok(tightened)
}

/// `path`, a file or directory, made private to the node's user; whether
/// it had to be.
pub fn tighten(path: &Path, tightened: &mut Vec<PathBuf>) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::symlink_metadata(path)?;
        let private = if meta.is_dir() {
            0o700
        } else if meta.is_file() {
            0o600
        } else {
            return Ok(());
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & !private != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & private))?;
            tightened.push(path.to_path_buf());
        }
    }
    Ok(())
}

/// Write `bytes` to `path` with mode 0600: into a temporary file beside it,
/// synced, then renamed over it, so a crash leaves the old file or the new
/// one, never half of one.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[cfg(unix)]
    #[test]
    fn a_data_dir_and_all_in_it_become_private() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        std::fs::create_dir_all(dir.join("archive")).unwrap();
        std::fs::write(dir.join("quotad.redb"), b"x").unwrap();
        std::fs::write(dir.join("archive/archive.redb"), b"y").unwrap();
        std::fs::write(dir.join("archive/deeper"), b"z").unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        for (p, m) in [
            (dir.clone(), 0o755),
            (dir.join("archive"), 0o775),
            (dir.join("quotad.redb"), 0o644),
            (dir.join("archive/archive.redb"), 0o640),
        ] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
        }
        std::fs::set_permissions(
            dir.join("archive/deeper"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let tightened = super::make_private(&dir).unwrap();
        assert_eq!(tightened.len(), 3, "{tightened:?}");
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("archive")), 0o700);
        assert_eq!(mode(&dir.join("quotad.redb")), 0o600);
        // One level deep only (the archive tightens its own file); behind
        // a 0700 directory anyway.
        assert_eq!(mode(&dir.join("archive/deeper")), 0o644);
        let mut one = Vec::new();
        super::tighten(&dir.join("archive/archive.redb"), &mut one).unwrap();
        assert_eq!(mode(&dir.join("archive/archive.redb")), 0o600);
        // Already private: nothing to do, and a narrower mode stays.
        std::fs::set_permissions(
            dir.join("quotad.redb"),
            std::fs::Permissions::from_mode(0o400),
        )
        .unwrap();
        assert!(super::make_private(&dir).unwrap().is_empty());
        assert_eq!(mode(&dir.join("quotad.redb")), 0o400);
    }

    #[test]
    fn the_file_has_its_bytes_and_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        super::write(&path, b"one").unwrap();
        super::write(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}

//! Cache keys: a SHA-256 over everything that goes into an image, so an unchanged input is not rebuilt.

use std::io::Read;
use std::path::Path;

use anyhow::Context;
use sha2::{Digest, Sha256};

/// Collects an image's inputs; each one is framed with its label and length, so two different
/// sets of inputs never hash alike by shifting bytes from one field into the next.
pub(crate) struct Key(Sha256);

impl Key {
    pub fn new(recipe: &str) -> Self {
        let mut key = Key(Sha256::new());
        key.text("recipe", recipe);
        key
    }

    pub fn bytes(&mut self, label: &str, bytes: &[u8]) -> &mut Self {
        self.frame(label, bytes.len() as u64);
        self.0.update(bytes);
        self
    }

    pub fn text(&mut self, label: &str, text: &str) -> &mut Self {
        self.bytes(label, text.as_bytes())
    }

    /// A file's contents, or every file under a directory (sorted, with relative paths and modes).
    pub fn path(&mut self, label: &str, path: &Path) -> anyhow::Result<&mut Self> {
        let meta = std::fs::symlink_metadata(path)
            .with_context(|| format!("reading {} for the image cache key", path.display()))?;
        if meta.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(path)
                .with_context(|| format!("listing {}", path.display()))?
                .collect::<Result<_, _>>()?;
            entries.sort_by_key(|e| e.file_name());
            self.text(label, "dir");
            for entry in entries {
                let name = entry.file_name().to_string_lossy().into_owned();
                self.path(&format!("{label}/{name}"), &entry.path())?;
            }
        } else if meta.file_type().is_symlink() {
            let target = std::fs::read_link(path)?;
            self.text(label, &format!("symlink {}", target.display()));
        } else {
            use std::os::unix::fs::PermissionsExt;
            self.text(label, &format!("file {:o}", meta.permissions().mode()));
            self.file(label, path)?;
        }
        Ok(self)
    }

    fn file(&mut self, label: &str, path: &Path) -> anyhow::Result<()> {
        let mut file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        self.frame(label, file.metadata()?.len());
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            self.0.update(&buf[..n]);
        }
    }

    fn frame(&mut self, label: &str, len: u64) {
        self.0.update((label.len() as u64).to_le_bytes());
        self.0.update(label.as_bytes());
        self.0.update(len.to_le_bytes());
    }

    /// 16 hex digits: enough to tell builds apart in a file name.
    pub fn finish(&self) -> String {
        hex(&self.0.clone().finalize()[..8])
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of a file, as `sha256:<hex>` (an OCI digest).
#[cfg(test)]
pub(crate) fn file_digest(path: &Path) -> anyhow::Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(format!("sha256:{}", hex(&hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_inputs_same_key_and_framing_separates_fields() {
        let a = Key::new("r1").text("a", "xy").text("b", "z").finish();
        let same = Key::new("r1").text("a", "xy").text("b", "z").finish();
        let shifted = Key::new("r1").text("a", "x").text("b", "yz").finish();
        let other_recipe = Key::new("r2").text("a", "xy").text("b", "z").finish();
        assert_eq!(a, same);
        assert_ne!(a, shifted);
        assert_ne!(a, other_recipe);
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn a_directory_key_follows_contents_names_and_modes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a.py"), "print(1)").unwrap();
        let key = |d: &Path| Key::new("r").path("ctx", d).unwrap().finish();
        let first = key(dir.path());
        assert_eq!(first, key(dir.path()));
        std::fs::write(dir.path().join("sub/a.py"), "print(2)").unwrap();
        let edited = key(dir.path());
        assert_ne!(first, edited);
        let file = dir.path().join("sub/a.py");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_ne!(edited, key(dir.path()));
        std::fs::rename(&file, dir.path().join("sub/b.py")).unwrap();
        assert_ne!(edited, key(dir.path()));
    }

    #[test]
    fn missing_input_is_an_error_naming_it() {
        let err = Key::new("r")
            .path("x", Path::new("/nonexistent/file"))
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("/nonexistent/file"));
    }

    #[test]
    fn file_digest_is_the_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "abc").unwrap();
        assert_eq!(
            file_digest(&path).unwrap(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

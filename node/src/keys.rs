//! Key files: an identity's secret keys as text, created with mode 0600, refused when
//! group- or world-readable (as ssh does), so a leaked file permission is caught early.
//!
//! The format and the public text forms (`pk…`, `reader…`, `next…`) are described and
//! parsed in [`text`], which does no IO. The secrets never leave the client: the node is never
//! a reader, and the CLI opens sealed values locally.

pub mod text;

use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, bail};
use ate_protocol::SecretKey;
use ate_protocol::seal::ReaderSecret;

pub use text::{Identity, KeyFileError, KeyTextError, MAX_KEY_FILE_BYTES};

impl Identity {
    /// The reader key, or an error that says how to get one.
    pub fn reader_secret(&self, path: &Path) -> anyhow::Result<&ReaderSecret> {
        self.reader.as_ref().with_context(|| {
            format!(
                "key file {} has no reader (ML-KEM) key; it predates sealed values: make a new one with `ate key new`",
                path.display()
            )
        })
    }
}

/// Creates a new key file (signing and reader keys) with fresh OS randomness. Refuses to
/// overwrite.
pub fn create(path: &Path) -> anyhow::Result<SecretKey> {
    Ok(create_identity(path)?.signing)
}

/// Like [`create`], returning both keys.
pub fn create_identity(path: &Path) -> anyhow::Result<Identity> {
    let mut seed = [0u8; 32];
    getrandom_seed(&mut seed)?;
    let key = SecretKey::from_seed(seed);
    let mut kem_seed = [0u8; 64];
    kem_seed[..32].copy_from_slice(&random_seed()?);
    kem_seed[32..].copy_from_slice(&random_seed()?);
    let reader = ReaderSecret::from_seed(kem_seed);
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).with_context(|| {
        format!(
            "cannot create key file {} (does it exist already?)",
            path.display()
        )
    })?;
    let id = Identity {
        signing: key,
        reader: Some(reader),
    };
    f.write_all(id.to_file_text().as_bytes())?;
    f.sync_all()?;
    Ok(id)
}

/// Reads a key file's signing key, refusing a file that others can read.
pub fn load(path: &Path) -> anyhow::Result<SecretKey> {
    Ok(load_identity(path)?.signing)
}

/// Reads a key file, refusing one that others can read.
pub fn load_identity(path: &Path) -> anyhow::Result<Identity> {
    let meta =
        fs::metadata(path).with_context(|| format!("cannot read key file {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            bail!(
                "key file {} is readable by others (mode {:o}); run `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            );
        }
    }
    // Read one byte past the limit, so a huge file is refused without reading it all.
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|f| {
            f.take(MAX_KEY_FILE_BYTES as u64 + 1)
                .read_to_end(&mut bytes)
        })
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    Identity::from_file_bytes(&bytes).with_context(|| {
        format!(
            "{} is not an ate key file (make one with `ate key new`)",
            path.display()
        )
    })
}

fn getrandom_seed(seed: &mut [u8; 32]) -> anyhow::Result<()> {
    let mut f = fs::File::open("/dev/urandom").context("cannot open /dev/urandom")?;
    std::io::Read::read_exact(&mut f, seed).context("cannot read /dev/urandom")?;
    Ok(())
}

/// 32 random bytes from the OS (for chain nonces and node identities).
pub fn random_seed() -> anyhow::Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    getrandom_seed(&mut seed)?;
    Ok(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_are_private_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("alice.key");
        let k = create(&p).unwrap();
        assert_eq!(load(&p).unwrap().public(), k.public());
        let id = load_identity(&p).unwrap();
        assert!(id.reader_public().is_some(), "new files hold a reader key");
        let text = fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(!format!("{id:?}").contains(text.lines().nth(1).unwrap()));
        assert!(create(&p).is_err(), "never overwrites");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
            fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
            let err = load(&p).unwrap_err().to_string();
            assert!(err.contains("chmod 600"), "{err}");
        }
        let bad = dir.path().join("bad.key");
        fs::write(&bad, "hello").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&bad, fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert!(
            load(&bad)
                .unwrap_err()
                .to_string()
                .contains("not an ate key file")
        );
    }
}

//! Key files: a writer's secret key as text (`sk…`), created with mode 0600, refused when
//! group- or world-readable (as ssh does), so a leaked file permission is caught early.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use ate_protocol::SecretKey;

/// Creates a new key file with fresh OS randomness. Refuses to overwrite.
pub fn create(path: &Path) -> anyhow::Result<SecretKey> {
    let mut seed = [0u8; 32];
    getrandom_seed(&mut seed)?;
    let key = SecretKey::from_seed(seed);
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
    writeln!(f, "{}", key.to_text())?;
    f.sync_all()?;
    Ok(key)
}

/// Reads a key file, refusing one that others can read.
pub fn load(path: &Path) -> anyhow::Result<SecretKey> {
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
    let text = fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    SecretKey::from_text(&text)
        .with_context(|| format!("{} is not an ate key file", path.display()))
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

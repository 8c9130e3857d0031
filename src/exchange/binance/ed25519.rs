//! The Ed25519 private key that logs a WebSocket API session on (`session.logon`), loaded from
//! a PKCS#8 PEM file as Binance's key generator writes it.
//!
//! - The file must be readable by its owner only (mode `& 0o077 == 0`, as ssh asks of a private
//!   key): a key others can read is refused before anything is sent.
//! - The key is never printed: `Debug` shows `***`, and an error names the file, not its text.
//! - A signature is base64 of the Ed25519 signature over the payload's UTF-8 bytes
//!   (web-socket-api.md, "SIGNED Request Example (Ed25519)").

use base64::Engine;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signer as _, SigningKey};
use std::fmt;
use std::path::Path;

/// The environment variable naming the key file when the flag does not.
pub const KEY_FILE_ENV: &str = "BINANCE_ED25519_KEY_FILE";
/// The environment variable holding the API key Binance issued for the Ed25519 public key.
pub const API_KEY_ENV: &str = "BINANCE_ED25519_API_KEY";

/// What `session.logon` needs: the API key registered with the public key, and the private key.
#[derive(Debug, Clone)]
pub struct Ed25519Login {
    pub api_key: super::Secret,
    pub key: Ed25519Key,
}

/// An Ed25519 signing key. Cloning shares nothing with logs: `Debug` is `***`.
#[derive(Clone)]
pub struct Ed25519Key {
    key: SigningKey,
}

impl fmt::Debug for Ed25519Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ed25519Key(***)")
    }
}

impl Ed25519Key {
    /// Reads `path`: refused when group or others may read it, or when it is not a PKCS#8 PEM
    /// Ed25519 private key. The error is one line that names the file, never its contents.
    pub fn from_file(path: &Path) -> Result<Ed25519Key, String> {
        let shown = path.display();
        let meta = std::fs::metadata(path).map_err(|e| format!("Ed25519 key file {shown}: {e}"))?;
        let mode = mode_of(&meta);
        if mode & 0o077 != 0 {
            return Err(format!(
                "Ed25519 key file {shown} can be read by group or others (mode {:o}); chmod 600 it",
                mode & 0o777
            ));
        }
        let pem = std::fs::read_to_string(path).map_err(|e| format!("Ed25519 key file {shown}: {e}"))?;
        Self::from_pem(&pem).map_err(|e| format!("Ed25519 key file {shown}: {e}"))
    }

    /// A PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pem(pem: &str) -> Result<Ed25519Key, String> {
        SigningKey::from_pkcs8_pem(pem)
            .map(|key| Ed25519Key { key })
            .map_err(|_| "not a PKCS#8 PEM Ed25519 private key".to_string())
    }

    /// base64(Ed25519(payload)).
    pub fn sign(&self, payload: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.key.sign(payload).to_bytes())
    }

    /// The public key as PEM (`-----BEGIN PUBLIC KEY-----`): what the exchange is given.
    pub fn public_key_pem(&self) -> String {
        use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePublicKey};
        // Encoding 32 bytes of a valid key cannot fail.
        self.key.verifying_key().to_public_key_pem(LineEnding::LF).unwrap_or_default()
    }
}

#[cfg(unix)]
fn mode_of(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode()
}

/// Elsewhere there is no group/others bit to check.
#[cfg(not(unix))]
#[cfg(not(tarpaulin_include))]
fn mode_of(_meta: &std::fs::Metadata) -> u32 {
    0
}

/// Verifies a base64 Ed25519 `signature` over `payload` against a PEM public key (the server
/// side, `genesis-exchange`).
pub fn verify(public_key_pem: &str, payload: &[u8], signature: &str) -> bool {
    use ed25519_dalek::pkcs8::DecodePublicKey;
    let Ok(key) = ed25519_dalek::VerifyingKey::from_public_key_pem(public_key_pem) else { return false };
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(signature) else { return false };
    let Ok(signature) = ed25519_dalek::Signature::from_slice(&bytes) else { return false };
    key.verify_strict(payload, &signature).is_ok()
}

/// RFC 8032's test 1 private key as PKCS#8 PEM (Binance's documentation key is not published).
#[cfg(test)]
pub(crate) const TEST_KEY_PEM: &str =
    "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n-----END PRIVATE KEY-----\n";

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn key_file(mode: u32) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        std::fs::write(&path, TEST_KEY_PEM).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, path)
    }

    #[test]
    fn a_signature_verifies_with_the_public_key_and_not_over_other_bytes() {
        let key = Ed25519Key::from_pem(TEST_KEY_PEM).unwrap();
        let signature = key.sign(b"apiKey=k&timestamp=1");
        assert_eq!(signature.len(), 88, "64 bytes in base64");
        assert!(verify(&key.public_key_pem(), b"apiKey=k&timestamp=1", &signature));
        assert!(!verify(&key.public_key_pem(), b"apiKey=k&timestamp=2", &signature));
        assert!(!verify(&key.public_key_pem(), b"apiKey=k&timestamp=1", "not base64!"));
        assert!(!verify(&key.public_key_pem(), b"apiKey=k&timestamp=1", "AAAA"));
        assert!(!verify("not a key", b"apiKey=k&timestamp=1", &signature));
    }

    #[test]
    fn a_key_file_only_its_owner_reads_is_loaded() {
        let (_dir, path) = key_file(0o600);
        let key = Ed25519Key::from_file(&path).unwrap();
        assert_eq!(format!("{key:?}"), "Ed25519Key(***)");
    }

    #[test]
    fn a_key_file_group_or_others_can_read_is_refused_in_one_line() {
        for mode in [0o640, 0o604, 0o644] {
            let (_dir, path) = key_file(mode);
            let e = Ed25519Key::from_file(&path).unwrap_err();
            assert!(e.contains("can be read by group or others") && e.contains("chmod 600"), "{e}");
            assert!(!e.contains('\n') && !e.contains("MC4CAQ"), "{e}");
        }
    }

    #[test]
    fn a_missing_file_or_one_that_is_no_key_is_refused_without_its_text() {
        let dir = tempfile::tempdir().unwrap();
        let e = Ed25519Key::from_file(&dir.path().join("absent.pem")).unwrap_err();
        assert!(e.contains("absent.pem"), "{e}");
        let path = dir.path().join("bad.pem");
        std::fs::write(&path, "secret-looking text").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = Ed25519Key::from_file(&path).unwrap_err();
        assert!(e.contains("not a PKCS#8 PEM Ed25519 private key") && !e.contains("secret-looking"), "{e}");
        let unreadable = dir.path().join("dir.pem");
        std::fs::create_dir(&unreadable).unwrap();
        std::fs::set_permissions(&unreadable, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(Ed25519Key::from_file(&unreadable).is_err());
    }
}

//! Identities: the lab's SSH client key, and each host's hostname, machine-id, SSH host key
//! and authorized keys, written into the host's own layer before its first boot.

use std::{
    fs,
    net::Ipv4Addr,
    os::unix::fs::{PermissionsExt, chown},
    path::Path,
};

use ssh_key::{
    Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey,
    rand_core::{OsRng, RngCore},
};

use crate::{Error, Result};

/// The user with passwordless sudo that every lab host has besides root.
pub const SUDO_USER: &str = "kube";

/// Makes the lab's client key pair at `key` (and `key.pub`) unless it exists; returns the
/// public key line.
pub fn ensure_client_key(key: &Path) -> Result<String> {
    let pub_path = key.with_extension("pub");
    if let Ok(public) = fs::read_to_string(&pub_path)
        && key.exists()
    {
        return Ok(public.trim().to_string());
    }
    let dir = key.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(Error::io("create directory", dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(Error::io("chmod", dir))?;
    let (private, public) = generate("lab client", "kubegrid-lab")?;
    write_file(key, private.as_bytes(), 0o600)?;
    write_file(&pub_path, format!("{public}\n").as_bytes(), 0o644)?;
    Ok(public)
}

fn generate(what: &'static str, comment: &str) -> Result<(String, String)> {
    let err = |source| Error::GenerateKey { what, source };
    let mut key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).map_err(err)?;
    key.set_comment(comment);
    let private = key.to_openssh(LineEnding::LF).map_err(err)?.to_string();
    let public = key.public_key().to_openssh().map_err(err)?;
    Ok((private, public))
}

/// The SHA256 fingerprint of an OpenSSH public key line, as `ssh-keygen -l` prints it.
pub fn fingerprint(public_key: &str) -> String {
    PublicKey::from_openssh(public_key)
        .map(|k| k.fingerprint(HashAlg::Sha256).to_string())
        .unwrap_or_else(|_| "(unreadable key)".into())
}

/// What a new host was given.
#[derive(Debug, Clone)]
pub struct HostIdentity {
    /// Its /etc/machine-id.
    pub machine_id: String,
    /// Its SSH host public key line.
    pub host_key: String,
}

/// Writes a new host's identity into its rootfs (the overlay's upper layer takes the writes).
pub fn write_host(
    rootfs: &Path,
    name: &str,
    address: Ipv4Addr,
    authorized_key: &str,
) -> Result<HostIdentity> {
    let mut id = [0u8; 16];
    OsRng.fill_bytes(&mut id);
    let machine_id = hex::encode(id);
    write_file(
        &rootfs.join("etc/machine-id"),
        format!("{machine_id}\n").as_bytes(),
        0o444,
    )?;
    write_file(
        &rootfs.join("etc/hostname"),
        format!("{name}\n").as_bytes(),
        0o644,
    )?;
    let hosts = format!(
        "127.0.0.1\tlocalhost\n{address}\t{name}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    );
    write_file(&rootfs.join("etc/hosts"), hosts.as_bytes(), 0o644)?;

    let (private, host_key) = generate("host", &format!("root@{name}"))?;
    write_file(
        &rootfs.join("etc/ssh/ssh_host_ed25519_key"),
        private.as_bytes(),
        0o600,
    )?;
    write_file(
        &rootfs.join("etc/ssh/ssh_host_ed25519_key.pub"),
        format!("{host_key}\n").as_bytes(),
        0o644,
    )?;

    let line = format!("{authorized_key}\n");
    write_file(
        &rootfs.join("root/.ssh/authorized_keys"),
        line.as_bytes(),
        0o600,
    )?;
    let (uid, gid) = user_ids(rootfs, SUDO_USER)?;
    let user_keys = rootfs.join(format!("home/{SUDO_USER}/.ssh/authorized_keys"));
    write_file(&user_keys, line.as_bytes(), 0o600)?;
    chown(&user_keys, Some(uid), Some(gid)).map_err(Error::io("chown", &user_keys))?;
    Ok(HostIdentity {
        machine_id,
        host_key,
    })
}

/// Looks `user` up in the rootfs's /etc/passwd (the machine's own may differ).
fn user_ids(rootfs: &Path, user: &str) -> Result<(u32, u32)> {
    let passwd = rootfs.join("etc/passwd");
    let text = fs::read_to_string(&passwd).map_err(Error::io("read", &passwd))?;
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == user)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "base rootfs has no user `{user}` in {}",
                passwd.display()
            ))
        })
}

/// Writes a file with a mode, replacing it atomically.
pub(crate) fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let tmp = path.with_extension("kubegrid-tmp");
    fs::write(&tmp, bytes).map_err(Error::io("write", &tmp))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))
        .map_err(Error::io("chmod", &tmp))?;
    fs::rename(&tmp, path).map_err(Error::io("replace", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for d in ["etc/ssh", "root/.ssh", "home/kube/.ssh"] {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/bash\nkube:x:1000:1000::/home/kube:/bin/bash\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn client_key_is_made_once_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("ssh/id_ed25519");
        let first = ensure_client_key(&key).unwrap();
        assert!(first.starts_with("ssh-ed25519 "));
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            ensure_client_key(&key).unwrap(),
            first,
            "an existing key is kept"
        );
        assert!(fingerprint(&first).starts_with("SHA256:"));
    }

    #[test]
    fn each_host_gets_its_own_identity() {
        let (a, b) = (fake_rootfs(), fake_rootfs());
        let ida = write_host(
            a.path(),
            "lab-1",
            "10.1.0.2".parse().unwrap(),
            "ssh-ed25519 AAAA k",
        )
        .unwrap();
        let idb = write_host(
            b.path(),
            "lab-2",
            "10.1.0.3".parse().unwrap(),
            "ssh-ed25519 AAAA k",
        )
        .unwrap();
        assert_ne!(ida.machine_id, idb.machine_id);
        assert_ne!(ida.host_key, idb.host_key);
        assert_eq!(ida.machine_id.len(), 32);
        let read = |p: &str| fs::read_to_string(a.path().join(p)).unwrap();
        assert_eq!(read("etc/hostname"), "lab-1\n");
        assert_eq!(read("etc/machine-id").trim(), ida.machine_id);
        assert!(read("etc/hosts").contains("10.1.0.2\tlab-1"));
        assert_eq!(
            read("home/kube/.ssh/authorized_keys"),
            "ssh-ed25519 AAAA k\n"
        );
        let key_mode = fs::metadata(a.path().join("etc/ssh/ssh_host_ed25519_key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(key_mode & 0o777, 0o600);
    }
}

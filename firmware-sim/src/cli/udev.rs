//! `ferrokey install-udev`: installs the repository's udev rule
//! (`tools/udev/70-ferrokey.rules`, compiled in), creates the `ferrokey`
//! group it names, and reloads udev so it applies to existing devices.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::InstallUdevArgs;

/// The rule file's name (before 73-seat-late.rules, which applies uaccess).
pub const RULE_FILE: &str = "70-ferrokey.rules";
/// The rule, as shipped in the repository.
pub const RULE: &str = include_str!("../../../tools/udev/70-ferrokey.rules");
/// The group the rule gives /dev/uhid and hidraw nodes to.
pub const GROUP: &str = "ferrokey";

/// Writes the rule to `dir` atomically (mode 0644).
pub fn write_rule(dir: &Path) -> Result<std::path::PathBuf> {
    let path = dir.join(RULE_FILE);
    let tmp = dir.join(format!(".{RULE_FILE}.tmp"));
    let mut file = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(RULE.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644))?;
    fs::rename(&tmp, &path).with_context(|| format!("installing {}", path.display()))?;
    Ok(path)
}

fn run(program: &str, args: &[&str]) -> Result<()> {
    let status = Command::new(program)
        .args(args)
        .status()
        .with_context(|| format!("running {program}"))?;
    if !status.success() {
        bail!("{program} {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// `ferrokey install-udev`.
pub fn install(args: &InstallUdevArgs) -> Result<()> {
    if !args.no_reload && !crate::transport::is_root() {
        bail!(
            "install-udev writes to {} and reloads udev: run it with sudo",
            args.rules_dir.display()
        );
    }
    let path = write_rule(&args.rules_dir)?;
    println!("installed {}", path.display());
    if args.no_reload {
        return Ok(());
    }
    let has_group = fs::read_to_string("/etc/group")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(':').next() == Some(GROUP));
    if !has_group {
        run("groupadd", &["--system", GROUP])?;
        println!("created the group {GROUP}");
    }
    run("udevadm", &["control", "--reload-rules"])?;
    run(
        "udevadm",
        &[
            "trigger",
            "--subsystem-match=hidraw",
            "--subsystem-match=misc",
        ],
    )?;
    println!(
        "udev reloaded: hidraw nodes of 1209:000a go to the logged-in user and the {GROUP} group"
    );
    if let Ok(user) = std::env::var("SUDO_USER") {
        println!("for --transport uhid without sudo: sudo usermod -aG {GROUP} {user} (then log in again)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_names_the_key_and_uhid() {
        assert!(RULE.contains(r#"KERNELS=="0003:1209:000A.*""#));
        assert!(RULE.contains(r#"TAG+="uaccess""#));
        assert!(RULE.contains(r#"KERNEL=="uhid""#));
        assert!(RULE.contains(&format!(r#"GROUP="{GROUP}""#)));
        // Every rule line has only known keys (a typo makes udev skip it).
        for line in RULE
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            for part in line.split(", ") {
                let key = part.split(['=', '!', '+']).next().unwrap_or_default();
                assert!(
                    ["KERNEL", "SUBSYSTEM", "KERNELS", "TAG", "GROUP", "MODE"].contains(&key),
                    "{part}"
                );
            }
        }
    }

    #[test]
    fn writes_the_rule_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = write_rule(tmp.path()).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), RULE);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert!(!tmp.path().join(".70-ferrokey.rules.tmp").exists());
    }
}

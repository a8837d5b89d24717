//! `ferrokey doctor`: what each transport needs on this host, and for each
//! problem the one command that fixes it.
//!
//! The facts are gathered from the system ([`Facts::gather`]) and judged by a
//! pure function ([`diagnose`]), so the judgement is tested without the host.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use super::udev::{GROUP, RULE_FILE};
use super::DoctorArgs;
use crate::transport::uhid::UHID_PATH;
use crate::transport::vhci::VHCI_DIR;
use crate::transport::{can_read_write, is_root, Transport};

/// Whether a kernel module is there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Module {
    /// Loaded (or built in).
    Loaded,
    /// Not loaded, but `modprobe` finds it.
    Loadable,
    /// Not available for the running kernel.
    Missing,
}

/// What doctor found on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    /// This process runs as root.
    pub root: bool,
    /// The uhid module.
    pub uhid: Module,
    /// `/dev/uhid` exists.
    pub uhid_node: bool,
    /// `/dev/uhid` can be opened read-write by this user.
    pub uhid_writable: bool,
    /// The vhci-hcd module.
    pub vhci: Module,
    /// Where the `usbip` program is, if anywhere.
    pub usbip_tool: Option<PathBuf>,
    /// The udev rule is installed.
    pub udev_rule: bool,
    /// hidraw nodes of ferrokey keys present now, and whether this user can
    /// open each.
    pub key_nodes: Vec<(PathBuf, bool)>,
    /// Browsers installed as snaps.
    pub snap_browsers: Vec<String>,
    /// Browsers installed as flatpaks.
    pub flatpak_browsers: Vec<String>,
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Fine (true) or a problem (false).
    pub ok: bool,
    /// What was checked and found.
    pub what: String,
    /// The command that fixes it (problems only).
    pub fix: Option<String>,
}

fn ok(what: impl Into<String>) -> Finding {
    Finding {
        ok: true,
        what: what.into(),
        fix: None,
    }
}

fn problem(what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        ok: false,
        what: what.into(),
        fix: Some(fix.into()),
    }
}

/// The findings for one transport, and whether it works here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// The transport.
    pub transport: Transport,
    /// Whether `ferrokey serve --transport T` works here as things are.
    pub works: bool,
    /// What was found.
    pub findings: Vec<Finding>,
}

const EXTRA_MODULES: &str = "sudo apt-get install linux-modules-extra-$(uname -r)";

fn module_finding(name: &str, state: Module) -> Finding {
    match state {
        Module::Loaded => ok(format!("kernel module {name} is loaded")),
        Module::Loadable => problem(
            format!("kernel module {name} is not loaded (it is installed)"),
            format!("sudo modprobe {name}"),
        ),
        Module::Missing => problem(
            format!("kernel module {name} is not available for this kernel"),
            EXTRA_MODULES,
        ),
    }
}

fn uhid_section(f: &Facts) -> Section {
    let mut findings = vec![module_finding("uhid", f.uhid)];
    let usable = f.uhid_node && f.uhid_writable;
    if f.uhid == Module::Missing {
        // Nothing else matters.
    } else if usable {
        findings.push(ok(format!("{UHID_PATH} is writable by this user")));
    } else if f.root {
        // Root can write it once the module is loaded.
    } else {
        findings.push(problem(
            format!("{UHID_PATH} is not writable by this user"),
            format!(
                "sudo ferrokey install-udev && sudo usermod -aG {GROUP} $USER   (then log in again; or run ferrokey with sudo)"
            ),
        ));
    }
    let works = f.uhid != Module::Missing && (usable || f.root);
    Section {
        transport: Transport::Uhid,
        works,
        findings,
    }
}

fn attach_section(f: &Facts) -> Section {
    let mut findings = vec![module_finding("vhci-hcd", f.vhci)];
    if f.root {
        findings.push(ok(
            "running as root (attach writes to vhci-hcd's sysfs files)",
        ));
    } else {
        findings.push(problem(
            "attach needs root: only root may write vhci-hcd's sysfs attach file",
            "sudo ferrokey serve --attach",
        ));
    }
    // As root, serve loads the module itself.
    let works = f.root && f.vhci != Module::Missing;
    Section {
        transport: Transport::Attach,
        works,
        findings,
    }
}

fn usbip_section(f: &Facts) -> Section {
    let mut findings = vec![ok(
        "the USB/IP server needs nothing on this host (it listens on 127.0.0.1:3240)",
    )];
    match &f.usbip_tool {
        Some(path) => findings.push(ok(format!("usbip tool at {} (to attach here)", path.display()))),
        None => findings.push(problem(
            "no `usbip` program to attach the key on this host (another machine or a VM can still attach it)",
            "sudo apt-get install usbip   (Ubuntu: sudo apt-get install linux-tools-generic)",
        )),
    }
    if f.vhci != Module::Loaded {
        findings.push(module_finding("vhci-hcd", f.vhci));
    }
    Section {
        transport: Transport::Usbip,
        works: true,
        findings,
    }
}

/// Findings that concern every transport: the udev rule, nodes, sandboxes.
pub fn common_findings(f: &Facts) -> Vec<Finding> {
    let mut findings = Vec::new();
    if f.udev_rule {
        findings.push(ok(format!("udev rule {RULE_FILE} is installed")));
    } else {
        findings.push(problem(
            format!("no udev rule {RULE_FILE}: a key's hidraw node is root's only (ferrokey serve gives it to the sudo user itself)"),
            "sudo ferrokey install-udev",
        ));
    }
    for (node, usable) in &f.key_nodes {
        if *usable {
            findings.push(ok(format!(
                "{} (a ferrokey key) is usable by this user",
                node.display()
            )));
        } else {
            findings.push(problem(
                format!(
                    "{} (a ferrokey key) is not readable and writable by this user",
                    node.display()
                ),
                "sudo ferrokey install-udev",
            ));
        }
    }
    for browser in &f.snap_browsers {
        findings.push(problem(
            format!("{browser} is a snap: its sandbox lets it reach only the security keys snapd's u2f-devices interface lists, and ferrokey (1209:000a) is not one"),
            format!("use {browser}'s .deb or tarball build instead of the snap"),
        ));
    }
    for app in &f.flatpak_browsers {
        findings.push(problem(
            format!("{app} is a flatpak: its sandbox hides hidraw nodes"),
            format!("flatpak override --user --device=all {app}"),
        ));
    }
    findings
}

/// Judges the facts: one section per transport, in the order `auto` tries them.
pub fn diagnose(f: &Facts) -> Vec<Section> {
    vec![uhid_section(f), attach_section(f), usbip_section(f)]
}

/// The transport `auto` picks for these facts.
pub fn auto_choice(sections: &[Section]) -> Transport {
    sections
        .iter()
        .find(|s| s.works)
        .map_or(Transport::Usbip, |s| s.transport)
}

fn module_state(name: &str, sys_name: &str) -> Module {
    if Path::new("/sys/module").join(sys_name).exists() {
        return Module::Loaded;
    }
    let found = Command::new("modprobe")
        .args(["-n", "-q", name])
        .status()
        .is_ok_and(|s| s.success());
    if found {
        Module::Loadable
    } else {
        Module::Missing
    }
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].iter().map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

const BROWSERS: [&str; 4] = ["chromium", "firefox", "google-chrome", "brave"];
const FLATPAK_BROWSERS: [&str; 4] = [
    "org.chromium.Chromium",
    "org.mozilla.firefox",
    "com.google.Chrome",
    "com.brave.Browser",
];

impl Facts {
    /// Looks at this host.
    pub fn gather() -> Facts {
        let mut uhid = module_state("uhid", "uhid");
        let uhid_node = Path::new(UHID_PATH).exists();
        if uhid == Module::Missing && uhid_node {
            // Built in, or loaded on first open of the static node.
            uhid = Module::Loadable;
        }
        let vhci = if Path::new(VHCI_DIR).exists() {
            Module::Loaded
        } else {
            module_state("vhci-hcd", "vhci_hcd")
        };
        let key_nodes = std::fs::read_dir(crate::transport::hidraw::HIDRAW_CLASS)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| {
                        std::fs::read_to_string(e.path().join("device/uevent"))
                            .is_ok_and(|u| u.contains("HID_ID=0003:00001209:0000000A"))
                    })
                    .map(|e| {
                        let node = Path::new("/dev").join(e.file_name());
                        let usable = can_read_write(&node);
                        (node, usable)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Facts {
            root: is_root(),
            uhid,
            uhid_node,
            uhid_writable: can_read_write(Path::new(UHID_PATH)),
            vhci,
            usbip_tool: on_path("usbip"),
            udev_rule: [
                "/etc/udev/rules.d",
                "/lib/udev/rules.d",
                "/usr/lib/udev/rules.d",
            ]
            .iter()
            .any(|d| Path::new(d).join(RULE_FILE).exists()),
            key_nodes,
            snap_browsers: BROWSERS
                .iter()
                .filter(|b| Path::new("/snap").join(b).exists())
                .map(|b| b.to_string())
                .collect(),
            flatpak_browsers: FLATPAK_BROWSERS
                .iter()
                .filter(|app| {
                    ["/var/lib/flatpak/app", "~/.local/share/flatpak/app"]
                        .iter()
                        .map(|d| {
                            PathBuf::from(
                                d.replace('~', &std::env::var("HOME").unwrap_or_default()),
                            )
                        })
                        .any(|d| d.join(app).exists())
                })
                .map(|a| a.to_string())
                .collect(),
        }
    }
}

/// Renders the report; returns whether `wanted` works here.
pub fn render(facts: &Facts, wanted: Transport, out: &mut String) -> bool {
    use std::fmt::Write;
    let sections = diagnose(facts);
    let auto = auto_choice(&sections);
    let mark = |ok: bool| if ok { "ok " } else { "!! " };
    for section in &sections {
        let _ = writeln!(
            out,
            "{} transport {}: {}",
            mark(section.works),
            section.transport.name(),
            if section.works {
                "works here"
            } else {
                "does not work here"
            }
        );
        for finding in &section.findings {
            let _ = writeln!(out, "   {}{}", mark(finding.ok), finding.what);
            if let Some(fix) = &finding.fix {
                let _ = writeln!(out, "      fix: {fix}");
            }
        }
    }
    let _ = writeln!(out, "every transport:");
    for finding in common_findings(facts) {
        let _ = writeln!(out, "   {}{}", mark(finding.ok), finding.what);
        if let Some(fix) = &finding.fix {
            let _ = writeln!(out, "      fix: {fix}");
        }
    }
    let _ = writeln!(
        out,
        "`ferrokey serve` (transport auto) would use: {}",
        auto.name()
    );
    match wanted {
        Transport::Auto => true,
        t => sections.iter().any(|s| s.transport == t && s.works),
    }
}

/// `ferrokey doctor`.
pub fn run(args: &DoctorArgs) -> ExitCode {
    let mut out = String::new();
    let works = render(&Facts::gather(), args.transport, &mut out);
    print!("{out}");
    if works {
        ExitCode::SUCCESS
    } else {
        println!(
            "transport {} cannot work here: see the fixes above",
            args.transport.name()
        );
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desktop() -> Facts {
        Facts {
            root: false,
            uhid: Module::Loadable,
            uhid_node: true,
            uhid_writable: false,
            vhci: Module::Loadable,
            usbip_tool: None,
            udev_rule: false,
            key_nodes: vec![],
            snap_browsers: vec![],
            flatpak_browsers: vec![],
        }
    }

    fn section(facts: &Facts, t: Transport) -> Section {
        diagnose(facts)
            .into_iter()
            .find(|s| s.transport == t)
            .unwrap()
    }

    #[test]
    fn a_fresh_desktop_user_falls_back_to_usbip_and_is_told_how() {
        let facts = desktop();
        let mut out = String::new();
        assert!(!render(&facts, Transport::Uhid, &mut out));
        assert!(
            out.contains("fix: sudo ferrokey install-udev && sudo usermod -aG ferrokey $USER"),
            "{out}"
        );
        assert!(out.contains("fix: sudo ferrokey serve --attach"), "{out}");
        assert!(out.contains("would use: usbip"), "{out}");
        assert!(render(&facts, Transport::Usbip, &mut String::new()));
        assert!(render(&facts, Transport::Auto, &mut String::new()));
    }

    #[test]
    fn a_missing_module_names_the_package_and_a_loadable_one_modprobe() {
        let facts = Facts {
            uhid: Module::Missing,
            uhid_node: false,
            root: true,
            vhci: Module::Missing,
            ..desktop()
        };
        let uhid = section(&facts, Transport::Uhid);
        assert!(!uhid.works);
        assert_eq!(uhid.findings[0].fix.as_deref(), Some(EXTRA_MODULES));
        assert!(!section(&facts, Transport::Attach).works);
        let loadable = Facts {
            root: true,
            ..desktop()
        };
        let mut out = String::new();
        assert!(render(&loadable, Transport::Uhid, &mut out));
        assert!(out.contains("fix: sudo modprobe uhid"), "{out}");
        assert!(out.contains("fix: sudo modprobe vhci-hcd"), "{out}");
        assert_eq!(auto_choice(&diagnose(&loadable)), Transport::Uhid);
    }

    #[test]
    fn root_without_uhid_attaches() {
        let facts = Facts {
            root: true,
            uhid: Module::Missing,
            uhid_node: false,
            vhci: Module::Loaded,
            ..desktop()
        };
        assert_eq!(auto_choice(&diagnose(&facts)), Transport::Attach);
    }

    #[test]
    fn sandboxed_browsers_and_nodes_are_reported() {
        let facts = Facts {
            snap_browsers: vec!["chromium".into()],
            flatpak_browsers: vec!["org.mozilla.firefox".into()],
            key_nodes: vec![(PathBuf::from("/dev/hidraw3"), false)],
            udev_rule: true,
            uhid_writable: true,
            ..desktop()
        };
        let mut out = String::new();
        assert!(render(&facts, Transport::Uhid, &mut out));
        assert!(
            out.contains("flatpak override --user --device=all org.mozilla.firefox"),
            "{out}"
        );
        assert!(out.contains("chromium is a snap"), "{out}");
        assert!(
            out.contains("/dev/hidraw3 (a ferrokey key) is not readable"),
            "{out}"
        );
        assert!(out.contains("ok udev rule"), "{out}");
        assert!(out.contains("would use: uhid"), "{out}");
    }
}

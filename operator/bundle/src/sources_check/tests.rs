use crate::{Error, Sources};

/// The built-in sources with `edit` applied to the text.
fn sources_with(edit: impl FnOnce(String) -> String) -> Result<Sources, String> {
    let text = edit(crate::sources::DEFAULT_SOURCES.to_string());
    Sources::parse(&text, "test sources").map_err(|e| e.to_string())
}

#[test]
fn the_built_in_sources_pass() {
    Sources::builtin().unwrap();
}

#[test]
fn a_component_defined_twice_is_refused() {
    let err = sources_with(|t| {
        t.replacen(
            "components:\n",
            "components:\n  runc:\n    artifacts:\n      - {name: runc2, kind: binary, url: \"https://e.org/{v}/{arch}\", checksum: {sha256: {}}}\n",
            1,
        )
    })
    .unwrap_err();
    assert!(err.contains("`runc` is defined twice"), "{err}");
}

#[test]
fn an_artifact_or_extract_name_given_twice_is_refused() {
    let err = sources_with(|t| {
        t.replace(
            "- {member: crictl, name: crictl}",
            "- {member: crictl, name: kubeadm}",
        )
    })
    .unwrap_err();
    assert!(
        err.contains("component `kubernetes` artifact 1: name `kubeadm` is already given by component `crictl` artifact 1 extract `crictl`"),
        "{err}"
    );
    let err = sources_with(|t| t.replace("      - name: kubelet\n", "      - name: kubeadm\n"))
        .unwrap_err();
    assert!(err.contains("name `kubeadm` is already given"), "{err}");
}

#[test]
fn http_urls_are_refused() {
    let err = sources_with(|t| {
        t.replace(
            "url: https://dl.k8s.io/release/v{v}/bin/linux/{arch}/kubeadm",
            "url: http://dl.k8s.io/release/v{v}/bin/linux/{arch}/kubeadm",
        )
    })
    .unwrap_err();
    assert!(err.contains("is not an https:// URL"), "{err}");
    let err = sources_with(|t| {
        t.replace(
            "index: https://deb.debian.org/debian/dists/bookworm/main",
            "index: http://deb.debian.org/debian/dists/bookworm/main",
        )
    })
    .unwrap_err();
    assert!(err.contains("repo index") && err.contains("https"), "{err}");
}

#[test]
fn dot_dot_in_names_is_refused() {
    for (from, to) in [
        ("      - name: kubeadm\n", "      - name: ../kubeadm\n"),
        (
            "{member: crictl, name: crictl}",
            "{member: crictl, name: ..}",
        ),
        ("  debian-12:\n", "  ../debian-12:\n"),
        ("  helm:\n", "  ..helm:\n"),
    ] {
        let err = sources_with(|t| t.replace(from, to)).unwrap_err();
        assert!(err.contains("is not a plain file name"), "{to}: {err}");
    }
}

#[test]
fn the_refusal_is_an_input_error() {
    let err = Sources::parse(
        "version: 1\ncomponents: {a: {}, a: {}}\nreleases: {}\n",
        "x",
    )
    .unwrap_err();
    assert!(matches!(err, Error::ParseSources { .. }), "{err}");
    assert!(err.is_input());
}

#[test]
fn a_rootfs_of_a_package_is_checked_before_anything_is_fetched() {
    let cases = [
        (
            "files: [bin/busybox]",
            "files: []",
            "component `busybox` debs package `busybox-static` rootfs: `files` is empty",
        ),
        (
            "files: [bin/busybox]",
            "files: [/bin/busybox]",
            "`/bin/busybox` is not a relative path inside the root file system",
        ),
        (
            "files: [bin/busybox]",
            "files: [bin/../busybox]",
            "`bin/../busybox` is not a relative path",
        ),
        (
            "links: {bin/sh: busybox}",
            "links: {bin/busybox: busybox}",
            "`bin/busybox` is given twice",
        ),
        (
            "links: {bin/sh: busybox}",
            "links: {bin: busybox}",
            "`bin` is a file or link, but `bin/busybox` is inside it",
        ),
        (
            "links: {bin/sh: busybox}",
            "links: {bin/sh: \"\"}",
            "the link `bin/sh` has an empty target",
        ),
        (
            "            name: busybox\n",
            "            name: kubeadm\n",
            "name `kubeadm` is already given by component `busybox` debs package `busybox-static` rootfs",
        ),
        (
            "      - {name: runc}\n",
            "      - {name: runc, rootfs: {name: r, files: [usr/sbin/runc]}}\n",
            "osPackages `debian-12` package `runc` has a `rootfs`; OS packages go into the bundle's apt repository",
        ),
    ];
    for (from, to, want) in cases {
        let err = sources_with(|t| {
            assert!(t.contains(from), "{from}");
            t.replace(from, to)
        })
        .unwrap_err();
        assert!(err.contains(want), "{to}: {err}");
    }
}

//! The operator image reference: registry/repository, pinned by digest when one is given
//! (the digest `kubegrid image build` prints wins over any tag), and the user the image runs
//! as is the one the chart's securityContext names.

use serde_json::json;

use crate::render::Render;

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn the_image_is_pulled_by_digest_when_one_is_given() {
    for (values, want) in [
        (json!({}), "ghcr.io/kubegrid/kubegrid:0.1.0".to_owned()),
        (
            json!({"image": {"tag": "0.2.0"}}),
            "ghcr.io/kubegrid/kubegrid:0.2.0".to_owned(),
        ),
        (
            json!({"image": {"tag": "0.2.0", "digest": DIGEST}}),
            format!("ghcr.io/kubegrid/kubegrid@{DIGEST}"),
        ),
        // Straight from a registry that is not mirrored, e.g. one on a bastion.
        (
            json!({"image": {"registry": "10.0.0.5:5000", "repository": "ops/kubegrid", "digest": DIGEST}}),
            format!("10.0.0.5:5000/ops/kubegrid@{DIGEST}"),
        ),
        (
            json!({"image": {"registry": "", "repository": "kubegrid"}}),
            "kubegrid:0.1.0".to_owned(),
        ),
    ] {
        let r = Render::valid(values.clone());
        assert_eq!(r.container()["image"], want.as_str(), "{values}");
        assert_eq!(r.container()["command"], json!(["/kubegrid"]));
    }
}

#[test]
fn the_pod_runs_as_the_user_the_image_was_built_with() {
    let r = Render::valid(json!({}));
    let pod = &r.deployment()["spec"]["template"]["spec"]["securityContext"];
    let container = &r.container()["securityContext"];
    let uid = u64::from(kubegrid_oci::IMAGE_USER_ID);
    for context in [pod, container] {
        assert_eq!(context["runAsUser"], uid, "{context}");
        assert_eq!(context["runAsGroup"], uid, "{context}");
    }
    assert_eq!(kubegrid_oci::IMAGE_BINARY_PATH, "/kubegrid");
}

#[test]
fn bad_image_values_are_refused_with_the_field_named() {
    for (values, needle) in [
        (json!({"image": {"digest": "sha256:abc"}}), "/image/digest"),
        (json!({"image": {"digest": "latest"}}), "/image/digest"),
        (
            json!({"image": {"repository": "Kubegrid"}}),
            "/image/repository",
        ),
        (json!({"image": {"tag": "a tag"}}), "/image/tag"),
        (
            json!({"image": {"registry": "https://ghcr.io"}}),
            "/image/registry",
        ),
    ] {
        let r = Render::new(values.clone());
        let err = &r.report["render_error"];
        assert_eq!(err["type"], "HelmValuesError", "{values}: {err}");
        assert!(
            err["message"].as_str().unwrap().contains(needle),
            "{values}: {err}"
        );
    }
    // The old single-field form (registry inside repository) with the new default registry
    // would name ghcr.io/ghcr.io/...: refused with the fix.
    let r = Render::new(json!({"image": {"repository": "ghcr.io/kubegrid/kubegrid"}}));
    let err = &r.report["render_error"];
    assert_eq!(err["type"], "HelmRenderError", "{err}");
    let message = err["message"].as_str().unwrap();
    for needle in [
        "starts with a registry host (ghcr.io)",
        "set image.registry to \"ghcr.io\"",
    ] {
        assert!(message.contains(needle), "{message}");
    }
}

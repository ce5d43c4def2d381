use super::*;

fn ctx(pod_monitors: bool) -> ServingContext {
    ServingContext {
        namespace: "llm".into(),
        cache_capacity: Some("1Ti".into()),
        pod_monitors,
        image: kubegrid_plan::ImageRef::new(
            "ghcr.io/kubegrid/kubegrid",
            "0.1.0",
            &format!("sha256:{}", "b".repeat(64)),
        )
        .unwrap(),
        keda: None,
    }
}

#[test]
fn every_object_has_a_known_plural_and_the_pinned_image() {
    let all = objects(&ctx(true));
    for o in &all {
        assert!(plural(o["kind"].as_str().unwrap()).is_some(), "{o}");
    }
    assert_eq!(all[0]["kind"], "CustomResourceDefinition");
    assert_eq!(all[2]["kind"], "Namespace");
    assert_eq!(all[2]["metadata"]["name"], "llm");
    let images: Vec<&str> = all
        .iter()
        .filter(|o| matches!(o["kind"].as_str(), Some("Deployment" | "DaemonSet")))
        .map(|o| {
            o["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap()
        })
        .collect();
    let pinned = format!("ghcr.io/kubegrid/kubegrid@sha256:{}", "b".repeat(64));
    assert_eq!(images, [pinned.as_str(), pinned.as_str()]);
    assert_eq!(all.iter().filter(|o| o["kind"] == "PodMonitor").count(), 3);
    assert_eq!(
        objects(&ctx(false))
            .iter()
            .filter(|o| o["kind"] == "PodMonitor")
            .count(),
        0
    );
}

#[test]
fn status_tells_only_what_the_checks_saw() {
    let check = |name: &str, ok: bool, detail: &str| CheckResult {
        name: name.into(),
        ok,
        detail: detail.into(),
        duration_ms: 0,
    };
    assert_eq!(status(None, &[check(SERVING_LAYER, true, "x")]), None);
    assert_eq!(status(Some(&ctx(false)), &[]), None);
    let applied_only = status(Some(&ctx(false)), &[check(SERVING_LAYER, true, "applied")]).unwrap();
    assert!(applied_only.deployed && !applied_only.ready);
    assert_eq!(applied_only.message, "applied");
    let both = status(
        Some(&ctx(false)),
        &[
            check(SERVING_LAYER, true, "applied"),
            check(SERVING_READY, false, "1 of 3"),
        ],
    )
    .unwrap();
    assert!(both.deployed && !both.ready);
    assert_eq!(both.message, "1 of 3");
    assert_eq!(both.namespace, "llm");
    assert!(both.image.ends_with(&"b".repeat(64)));
}

#[test]
fn health_needs_every_part() {
    let good = Health {
        crds_pending: Vec::new(),
        controller: Some((1, 2)),
        cache: Some((3, 3, 3)),
        keda: None,
    };
    assert!(good.ok());
    let nowhere = Health {
        cache: Some((0, 0, 0)),
        ..good.clone()
    };
    for bad in [
        Health {
            crds_pending: vec!["x".into()],
            ..good.clone()
        },
        Health {
            controller: Some((0, 2)),
            ..good.clone()
        },
        Health {
            controller: None,
            ..good.clone()
        },
        Health {
            cache: Some((2, 3, 3)),
            ..good.clone()
        },
        Health {
            cache: Some((3, 2, 3)),
            ..good.clone()
        },
        nowhere.clone(),
    ] {
        assert!(!bad.ok(), "{bad:?}");
    }
    assert!(
        nowhere
            .describe("llm")
            .contains("no Node is labelled nvidia.com/gpu.present=true")
    );
}

#[test]
fn every_kind_keda_may_have_has_a_plural() {
    for kind in kubegrid_plan::KEDA_KINDS {
        assert!(plural(kind).is_some(), "{kind}");
    }
}

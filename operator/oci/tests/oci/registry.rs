//! Pull, verify and push against real registries (docker-registry 2.8 on loopback).

use kubegrid_oci::{
    Digest, Error, ImageRef, PullFrom, PullOptions, PushOptions, RegistryEndpoint,
    RepositoryNaming, Transport, Trust,
    media::{ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, OCI_MANIFEST},
    ping, pull, push,
};

use crate::common::{
    TestRegistry, build_multiarch, exists, index_platforms, new_layout, tar_layer, top_descriptor,
    write_image,
};

fn from_registry(endpoint: RegistryEndpoint) -> PullOptions {
    PullOptions {
        from: PullFrom::Registry(endpoint),
        ..PullOptions::default()
    }
}

#[tokio::test]
async fn pull_keeps_wanted_platforms_verifies_and_refuses_bad_pins_and_arches() {
    let source = TestRegistry::start().await;
    let (_dir0, fixture) = new_layout();
    let built = build_multiarch(&fixture, "registry.k8s.io/kubegrid-test/multi:1.0");
    let upstream = ImageRef::parse("registry.k8s.io/kubegrid-test/multi:1.0").unwrap();
    let options = PushOptions::default();
    let pushed = push(&fixture, &upstream, &source.endpoint(), &options)
        .await
        .unwrap();
    assert_eq!(
        pushed.target.to_string(),
        format!("{}/kubegrid-test/multi:1.0@{}", source.host, built.index)
    );
    assert_eq!(
        (pushed.blobs_pushed, pushed.blobs_present),
        (built.blob_count, 0)
    );
    assert_eq!(pushed.manifests_pushed, 4);
    let again = push(&fixture, &upstream, &source.endpoint(), &options)
        .await
        .unwrap();
    assert_eq!(
        (again.blobs_pushed, again.blobs_present),
        (0, built.blob_count)
    );

    // A loopback registry is reached over plain HTTP by default, as containerd does.
    let image = ImageRef::parse(&format!("{}/kubegrid-test/multi:1.0", source.host)).unwrap();
    let upstream_only = PullOptions::default();

    let (_dir1, amd64_only) = new_layout();
    let pulled = pull(
        &amd64_only,
        &image,
        &built.index,
        &["amd64"],
        &upstream_only,
    )
    .await
    .unwrap();
    assert_eq!(pulled.name, format!("{}/kubegrid-test/multi", source.host));
    assert_eq!(pulled.tag.as_deref(), Some("1.0"));
    assert_eq!(pulled.upstream_digest, built.index);
    assert_ne!(
        pulled.digest, built.index,
        "arm64 and the attestation were dropped"
    );
    assert_eq!(pulled.arches, ["amd64"]);
    assert_eq!((pulled.blobs_fetched, pulled.blobs_present), (3, 0));
    let platforms = index_platforms(&amd64_only, &pulled.digest);
    assert_eq!(platforms.len(), 1);
    assert_eq!(
        (platforms[0].os.as_str(), platforms[0].architecture.as_str()),
        ("linux", "amd64")
    );
    let images = amd64_only.images().unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].name, image.to_string());
    assert_eq!(images[0].descriptor.digest, pulled.digest.as_str());
    assert_eq!(
        images[0].descriptor.annotations[ANNOTATION_REF_NAME],
        image.to_string()
    );
    assert_eq!(
        images[0].descriptor.annotations[ANNOTATION_CONTAINERD_NAME],
        image.to_string()
    );
    // The other fields of the upstream index survive the filtering.
    let stored: serde_json::Value =
        serde_json::from_slice(&amd64_only.read_blob(&pulled.digest).unwrap()).unwrap();
    assert_eq!(
        stored["annotations"]["org.opencontainers.image.created"],
        "2026-01-01T00:00:00Z"
    );
    let report = amd64_only
        .verify(std::slice::from_ref(&pulled.digest))
        .unwrap();
    assert_eq!((report.images, report.blobs), (1, 5));
    assert!(!exists(&amd64_only.blob_path(&built.arm64)));
    assert!(!exists(&amd64_only.blob_path(&built.attestation)));

    let (_dir2, both) = new_layout();
    let pulled_both = pull(
        &both,
        &image,
        &built.index,
        &["arm64", "amd64"],
        &upstream_only,
    )
    .await
    .unwrap();
    assert_ne!(
        pulled_both.digest, built.index,
        "the attestation was dropped"
    );
    assert_eq!(pulled_both.arches, ["amd64", "arm64"]);
    let arches: Vec<String> = index_platforms(&both, &pulled_both.digest)
        .into_iter()
        .map(|p| p.architecture)
        .collect();
    assert_eq!(arches, ["amd64", "arm64"]);
    assert_eq!(
        both.verify(std::slice::from_ref(&pulled_both.digest))
            .unwrap()
            .blobs,
        8
    );
    let repull = pull(
        &both,
        &image,
        &built.index,
        &["amd64", "arm64"],
        &upstream_only,
    )
    .await
    .unwrap();
    assert_eq!(repull.digest, pulled_both.digest);
    assert_eq!((repull.blobs_fetched, repull.blobs_present), (0, 5));

    // A pin that does not match is refused before anything is stored.
    let wrong = Digest::of(b"some other index");
    let (_dir3, refused) = new_layout();
    let err = pull(&refused, &image, &wrong, &["amd64"], &upstream_only)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::PinMismatch { .. }), "{err:?}");
    let text = err.to_string();
    for part in [
        image.to_string(),
        built.index.to_string(),
        wrong.to_string(),
    ] {
        assert!(text.contains(&part), "{text} should name {part}");
    }
    assert!(refused.images().unwrap().is_empty());

    let err = pull(
        &refused,
        &image,
        &built.index,
        &["amd64", "s390x"],
        &upstream_only,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, Error::MissingArch { ref arch, .. } if arch == "s390x"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("linux/amd64, linux/arm64"),
        "{err}"
    );
    assert!(refused.images().unwrap().is_empty());

    // Damage is found and named.
    let layer =
        serde_json::from_slice::<serde_json::Value>(&amd64_only.read_blob(&built.amd64).unwrap())
            .unwrap()["layers"][1]["digest"]
            .as_str()
            .unwrap()
            .to_owned();
    let layer = Digest::parse(&layer).unwrap();
    let mut bytes = std::fs::read(amd64_only.blob_path(&layer)).unwrap();
    bytes[600] ^= 0xff;
    std::fs::write(amd64_only.blob_path(&layer), &bytes).unwrap();
    let err = amd64_only
        .verify(std::slice::from_ref(&pulled.digest))
        .unwrap_err();
    assert!(matches!(err, Error::VerifyBlobCorrupt { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&image.to_string()) && text.contains(layer.as_str()),
        "{text}"
    );
    std::fs::remove_file(amd64_only.blob_path(&layer)).unwrap();
    let err = amd64_only
        .verify(std::slice::from_ref(&pulled.digest))
        .unwrap_err();
    assert!(matches!(err, Error::VerifyBlobMissing { .. }), "{err:?}");
    assert!(err.to_string().contains(layer.as_str()), "{err}");
    let err = amd64_only.verify(std::slice::from_ref(&wrong)).unwrap_err();
    assert!(matches!(err, Error::VerifyImageMissing { .. }), "{err:?}");
    assert!(err.to_string().contains(wrong.as_str()), "{err}");
}

#[tokio::test]
async fn mirror_pull_then_push_to_a_tls_registry_and_pull_back_as_containerd_would() {
    // A mirror holding repositories under their upstream host, as `--mirror` expects.
    let mirror = TestRegistry::start().await;
    let (_dir0, fixture) = new_layout();
    let built = build_multiarch(&fixture, "registry.k8s.io/kubegrid-test/multi:1.0");
    let image = ImageRef::parse("registry.k8s.io/kubegrid-test/multi:1.0").unwrap();
    let with_registry = PushOptions {
        naming: RepositoryNaming::WithRegistry,
        ..PushOptions::default()
    };
    push(&fixture, &image, &mirror.endpoint(), &with_registry)
        .await
        .unwrap();

    let mirror_url = RegistryEndpoint::parse_url(&format!("http://{}", mirror.host)).unwrap();
    let through_mirror = PullOptions {
        from: PullFrom::Mirror(mirror_url),
        concurrency: 2,
    };
    let (_dir1, bundle) = new_layout();
    let pulled = pull(
        &bundle,
        &image,
        &built.index,
        &["amd64", "arm64"],
        &through_mirror,
    )
    .await
    .unwrap();
    assert_eq!(pulled.name, "registry.k8s.io/kubegrid-test/multi");
    assert_eq!(
        bundle.images().unwrap()[0].name,
        "registry.k8s.io/kubegrid-test/multi:1.0"
    );
    bundle.verify(std::slice::from_ref(&pulled.digest)).unwrap();

    // The in-cluster registry: TLS with its own CA, repositories without the upstream host.
    let cluster = TestRegistry::start_tls().await;
    let untrusted = RegistryEndpoint::new(&cluster.host, Transport::Https(Trust::System));
    let err = ping(&untrusted).await.unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    let ca = cluster.ca_pem.clone().unwrap();
    let extra = RegistryEndpoint::new(&cluster.host, Transport::Https(Trust::SystemAnd(vec![ca])));
    ping(&extra).await.unwrap();
    let plain = RegistryEndpoint::new(&cluster.host, Transport::Http);
    assert!(
        ping(&plain).await.is_err(),
        "a TLS registry does not speak plain HTTP"
    );

    let pushed = push(
        &bundle,
        &image,
        &cluster.endpoint(),
        &PushOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        pushed.target.to_string(),
        format!("{}/kubegrid-test/multi:1.0@{}", cluster.host, pulled.digest)
    );
    assert_eq!(
        pushed.blobs_pushed, 5,
        "2 configs, the shared base, 2 hello layers"
    );
    let again = push(
        &bundle,
        &image,
        &cluster.endpoint(),
        &PushOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!((again.blobs_pushed, again.blobs_present), (0, 5));

    // containerd with a certs.d/registry.k8s.io/hosts.toml mirror host asks it for
    // /v2/kubegrid-test/multi/...; pull the same way, by digest.
    let by_digest = ImageRef::parse(&format!(
        "registry.k8s.io/kubegrid-test/multi@{}",
        pulled.digest
    ))
    .unwrap();
    let (_dir2, back) = new_layout();
    let round_trip = pull(
        &back,
        &by_digest,
        &pulled.digest,
        &["amd64", "arm64"],
        &from_registry(cluster.endpoint()),
    )
    .await
    .unwrap();
    assert_eq!(round_trip.digest, pulled.digest, "nothing left to filter");
    assert_eq!(round_trip.upstream_digest, pulled.digest);
    assert_eq!(round_trip.tag, None);
    assert_eq!(
        back.images().unwrap()[0].name,
        format!("registry.k8s.io/kubegrid-test/multi@{}", pulled.digest)
    );
    back.verify(std::slice::from_ref(&round_trip.digest))
        .unwrap();

    let err = push(
        &bundle,
        &ImageRef::parse("registry.k8s.io/pause:3.10").unwrap(),
        &cluster.endpoint(),
        &PushOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::PushImageNotInLayout { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("registry.k8s.io/kubegrid-test/multi:1.0"),
        "{err}"
    );
}

#[tokio::test]
async fn single_platform_image_is_checked_against_its_config() {
    let registry = TestRegistry::start().await;
    let (_dir0, fixture) = new_layout();
    let manifest = write_image(&fixture, "amd64", &[tar_layer("hello", b"only amd64\n")]);
    let image = ImageRef::parse("docker.io/kubegrid/single:2").unwrap();
    fixture
        .set_image(&image.to_string(), top_descriptor(OCI_MANIFEST, &manifest))
        .unwrap();
    push(
        &fixture,
        &image,
        &registry.endpoint(),
        &PushOptions::default(),
    )
    .await
    .unwrap();
    let pin = Digest::of(&manifest);
    let from = from_registry(registry.endpoint());

    let (_dir1, layout) = new_layout();
    let err = pull(&layout, &image, &pin, &["arm64"], &from)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::MissingArch { ref arch, .. } if arch == "arm64"),
        "{err:?}"
    );
    assert!(err.to_string().contains("linux/amd64"), "{err}");
    assert!(layout.images().unwrap().is_empty());

    let pulled = pull(&layout, &image, &pin, &["amd64"], &from)
        .await
        .unwrap();
    assert_eq!(
        (pulled.digest.clone(), pulled.upstream_digest.clone()),
        (pin.clone(), pin)
    );
    assert_eq!(pulled.arches, ["amd64"]);
    assert_eq!(pulled.name, "docker.io/kubegrid/single");
    layout.verify(&[pulled.digest]).unwrap();
}

use kubegrid_journal::StoredCert;

use crate::{Kind, fresh, on_both_backends};

on_both_backends!(certificates_members_and_kubeconfig_round_trip_per_cluster);
on_both_backends!(the_installed_version_round_trips_per_cluster);
on_both_backends!(certificates_list_sorted_and_delete_per_cluster);
on_both_backends!(cluster_state_values_round_trip_per_cluster_and_key);

async fn certificates_list_sorted_and_delete_per_cluster(kind: Kind) {
    let j = fresh(kind).await;
    let cert = |n: &str| StoredCert {
        cert_pem: format!("CERT-{n}"),
        key_pem: format!("KEY-{n}"),
    };
    assert!(j.certs("a").await.unwrap().is_empty());
    for name in ["etcd-ca-next", "apiserver", "etcd-ca"] {
        j.put_cert("a", name, &cert(name)).await.unwrap();
    }
    j.put_cert("b", "etcd-ca", &cert("b")).await.unwrap();
    assert_eq!(
        j.certs("a").await.unwrap(),
        vec![
            ("apiserver".to_string(), cert("apiserver")),
            ("etcd-ca".to_string(), cert("etcd-ca")),
            ("etcd-ca-next".to_string(), cert("etcd-ca-next")),
        ],
        "sorted by name, this cluster's only"
    );
    assert!(j.delete_cert("a", "etcd-ca-next").await.unwrap());
    assert!(
        !j.delete_cert("a", "etcd-ca-next").await.unwrap(),
        "a second delete finds nothing"
    );
    assert!(!j.delete_cert("c", "etcd-ca").await.unwrap());
    assert_eq!(j.cert("a", "etcd-ca-next").await.unwrap(), None);
    assert_eq!(j.certs("a").await.unwrap().len(), 2);
    assert_eq!(j.cert("b", "etcd-ca").await.unwrap(), Some(cert("b")));
}

async fn cluster_state_values_round_trip_per_cluster_and_key(kind: Kind) {
    let j = fresh(kind).await;
    assert_eq!(j.state("a", "rotation").await.unwrap(), None);
    j.put_state("a", "rotation", "{\"ca\":\"etcd\",\"phase\":\"new-ca\"}")
        .await
        .unwrap();
    j.put_state("a", "other", "x").await.unwrap();
    j.put_state("b", "rotation", "b's").await.unwrap();
    j.put_state(
        "a",
        "rotation",
        "{\"ca\":\"etcd\",\"phase\":\"trust-both\"}",
    )
    .await
    .unwrap();
    assert_eq!(
        j.state("a", "rotation").await.unwrap().as_deref(),
        Some("{\"ca\":\"etcd\",\"phase\":\"trust-both\"}"),
        "the latest value replaces the first"
    );
    assert_eq!(
        j.state("b", "rotation").await.unwrap().as_deref(),
        Some("b's")
    );
    assert!(j.delete_state("a", "rotation").await.unwrap());
    assert!(!j.delete_state("a", "rotation").await.unwrap());
    assert_eq!(j.state("a", "rotation").await.unwrap(), None);
    assert_eq!(j.state("a", "other").await.unwrap().as_deref(), Some("x"));
    assert_eq!(
        j.state("b", "rotation").await.unwrap().as_deref(),
        Some("b's")
    );
}

async fn the_installed_version_round_trips_per_cluster(kind: Kind) {
    let j = fresh(kind).await;
    assert_eq!(j.installed_version("a").await.unwrap(), None);
    j.put_installed_version("a", "1.31.4").await.unwrap();
    j.put_installed_version("b", "1.32.0").await.unwrap();
    assert_eq!(
        j.installed_version("a").await.unwrap().as_deref(),
        Some("1.31.4")
    );
    j.put_installed_version("a", "1.31.5").await.unwrap();
    assert_eq!(
        j.installed_version("a").await.unwrap().as_deref(),
        Some("1.31.5"),
        "the latest install replaces the first"
    );
    assert_eq!(
        j.installed_version("b").await.unwrap().as_deref(),
        Some("1.32.0")
    );
}

async fn certificates_members_and_kubeconfig_round_trip_per_cluster(kind: Kind) {
    let j = fresh(kind).await;
    let ca = StoredCert {
        cert_pem: "CERT".into(),
        key_pem: "KEY".into(),
    };
    assert_eq!(j.cert("a", "ca").await.unwrap(), None);
    j.put_cert("a", "ca", &ca).await.unwrap();
    assert_eq!(j.cert("a", "ca").await.unwrap(), Some(ca.clone()));
    assert_eq!(j.cert("b", "ca").await.unwrap(), None, "per cluster");
    let newer = StoredCert {
        cert_pem: "CERT2".into(),
        key_pem: "KEY2".into(),
    };
    j.put_cert("a", "ca", &newer).await.unwrap();
    assert_eq!(j.cert("a", "ca").await.unwrap(), Some(newer));
    assert!(!format!("{ca:?}").contains("KEY"), "Debug hides the key");

    j.put_member("a", "n2", "{\"x\":2}").await.unwrap();
    j.put_member("a", "n1", "{\"x\":1}").await.unwrap();
    j.put_member("a", "n1", "{\"x\":3}").await.unwrap();
    assert_eq!(
        j.members("a").await.unwrap(),
        vec![
            ("n1".to_string(), "{\"x\":3}".to_string()),
            ("n2".to_string(), "{\"x\":2}".to_string())
        ]
    );
    assert!(j.members("b").await.unwrap().is_empty(), "per cluster");
    j.remove_member("a", "n2").await.unwrap();
    assert_eq!(j.members("a").await.unwrap().len(), 1);

    assert_eq!(j.kubeconfig("a").await.unwrap(), None);
    j.put_kubeconfig("a", "https://10.0.0.1:6443", "apiVersion: v1")
        .await
        .unwrap();
    j.put_kubeconfig("a", "https://10.0.0.1:6443", "apiVersion: v1\nkind: Config")
        .await
        .unwrap();
    assert_eq!(
        j.kubeconfig("a").await.unwrap().as_deref(),
        Some("apiVersion: v1\nkind: Config"),
        "the latest kubeconfig replaces the first"
    );
}

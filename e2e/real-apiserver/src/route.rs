//! The routing layer: one `kube::Client` whose requests for kubegrid's groups go to the real
//! API server and whose other requests go to the service it wraps (the in-memory fake).
//!
//! Which paths go where ([`Routes::kubegrid`]):
//! - to the real server: `/apis` (the group list), `/apis/kubegrid.io/...` (Clusters, Nodes,
//!   their status subresources and watches), `/apis/serving.kubegrid.io/...` (LLMServices,
//!   their status and scale subresources) and `/apis/apiextensions.k8s.io/...` (the CRDs);
//! - to the wrapped service: everything else, i.e. what the real server does not serve:
//!   `/api/v1/...` (Secrets, ConfigMaps, Namespaces, core Nodes, Pods),
//!   `/apis/events.k8s.io/...` (Events), `/apis/coordination.k8s.io/...` (Leases), `/version`.
//!
//! The real server's `Warning` headers (e.g. one per unknown field it pruned from a write) are
//! recorded in [`Warnings`] ([`crate::RealApiServer::routed_warnings`]).

use std::{
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, combinators::UnsyncBoxBody};
use kube::client::Body;
use tower::{BoxError, Layer, Service, ServiceExt};

/// The body of a routed response, from either side.
pub type RoutedBody = UnsyncBoxBody<Bytes, BoxError>;

/// Which request paths go to the real server.
#[derive(Debug, Clone)]
pub struct Routes {
    exact: Vec<String>,
    prefixes: Vec<String>,
}

impl Routes {
    /// kubegrid's groups and the CRDs to the real server; see the module documentation.
    pub fn kubegrid() -> Self {
        Self {
            exact: vec!["/apis".into(), "/apis/".into()],
            prefixes: ["kubegrid.io", "serving.kubegrid.io", "apiextensions.k8s.io"]
                .iter()
                .flat_map(|group| [format!("/apis/{group}/"), format!("/apis/{group}")])
                .collect(),
        }
    }

    /// Whether a request for `path` goes to the real server.
    pub fn to_real(&self, path: &str) -> bool {
        self.exact.iter().any(|e| e == path)
            || self.prefixes.iter().any(|p| {
                path.strip_prefix(p.as_str())
                    .is_some_and(|rest| p.ends_with('/') || rest.is_empty())
            })
    }
}

/// The `Warning` headers of the real server's answers, as `METHOD path: warning`: the
/// server warns, for instance, about each unknown field it prunes from a write.
#[derive(Debug, Clone, Default)]
pub struct Warnings(Arc<Mutex<Vec<String>>>);

impl Warnings {
    /// The warnings so far.
    pub fn all(&self) -> Vec<String> {
        self.0.lock().expect("warnings lock").clone()
    }

    fn record(&self, request: &str, response: &http::HeaderMap) {
        let mut all = self.0.lock().expect("warnings lock");
        for warning in response.get_all(http::header::WARNING) {
            all.push(format!(
                "{request}: {}",
                String::from_utf8_lossy(warning.as_bytes())
            ));
        }
    }
}

/// A `tower` layer that sends the requests [`Routes`] names to `real` and the rest to the
/// wrapped service.
#[derive(Clone)]
pub struct RouteLayer {
    real: kube::Client,
    routes: Routes,
    warnings: Warnings,
}

impl RouteLayer {
    /// Routes `routes` to `real`.
    pub fn new(real: kube::Client, routes: Routes) -> Self {
        Self {
            real,
            routes,
            warnings: Warnings::default(),
        }
    }

    /// Records the real server's warnings in `warnings`.
    pub fn recording(mut self, warnings: Warnings) -> Self {
        self.warnings = warnings;
        self
    }
}

impl<S> Layer<S> for RouteLayer {
    type Service = Route<S>;

    fn layer(&self, inner: S) -> Route<S> {
        Route {
            real: self.real.clone(),
            routes: self.routes.clone(),
            warnings: self.warnings.clone(),
            inner,
        }
    }
}

/// The service [`RouteLayer`] makes.
#[derive(Clone)]
pub struct Route<S> {
    real: kube::Client,
    routes: Routes,
    warnings: Warnings,
    inner: S,
}

type RouteFuture = Pin<Box<dyn Future<Output = Result<Response<RoutedBody>, BoxError>> + Send>>;

impl<S, B> Service<Request<Body>> for Route<S>
where
    S: Service<Request<Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<RoutedBody>;
    type Error = BoxError;
    type Future = RouteFuture;

    // Readiness is checked on the side a request goes to, in `call`.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> RouteFuture {
        if self.routes.to_real(request.uri().path()) {
            let real = self.real.clone();
            let warnings = self.warnings.clone();
            let what = format!("{} {}", request.method(), request.uri());
            Box::pin(async move {
                let response = real.send(request).await?;
                warnings.record(&what, response.headers());
                Ok(response.map(|body| body.map_err(BoxError::from).boxed_unsync()))
            })
        } else {
            let inner = self.inner.clone();
            Box::pin(async move {
                let response = inner.oneshot(request).await.map_err(Into::into)?;
                Ok(response.map(|body| body.map_err(Into::into).boxed_unsync()))
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Routes;

    #[test]
    fn kubegrids_groups_and_the_crds_go_to_the_real_server_the_rest_to_the_fake() {
        let routes = Routes::kubegrid();
        for real in [
            "/apis",
            "/apis/kubegrid.io",
            "/apis/kubegrid.io/v1alpha1/namespaces/fleet/clusters/gpu/status",
            "/apis/kubegrid.io/v1alpha1/nodes",
            "/apis/serving.kubegrid.io/v1alpha1/namespaces/ml/llmservices/llama/scale",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        ] {
            assert!(routes.to_real(real), "{real}");
        }
        for fake in [
            "/api/v1/namespaces/fleet/secrets/gpu-ssh",
            "/api/v1/nodes",
            "/apis/events.k8s.io/v1/namespaces/fleet/events",
            "/apis/coordination.k8s.io/v1/namespaces/kubegrid-system/leases/kubegrid-operator",
            "/apis/kubegrid.iox/v1/things",
            "/apis/apps/v1/namespaces/ml/deployments/llama",
            "/apis/keda.sh/v1alpha1/namespaces/ml/scaledobjects/llama",
            "/version",
        ] {
            assert!(!routes.to_real(fake), "{fake}");
        }
    }
}

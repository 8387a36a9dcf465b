//! The direct client's DNS resolver: resolves as the system does, then
//! keeps only the addresses the outbound policy allows. A name that
//! resolves only to refused addresses (cloud metadata, or loopback when
//! that is refused) fails to connect with the rule in the error, so DNS
//! rebinding cannot carry a request past the check made at submission.

use callback_core::OutboundPolicy;
use hyper_util::client::legacy::connect::dns::Name;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

#[derive(Clone)]
pub(crate) struct PolicyResolver {
    policy: Arc<OutboundPolicy>,
}

impl PolicyResolver {
    pub(crate) fn new(policy: Arc<OutboundPolicy>) -> Self {
        Self { policy }
    }
}

type Resolving = Pin<Box<dyn Future<Output = io::Result<std::vec::IntoIter<SocketAddr>>> + Send>>;

impl tower_service::Service<Name> for PolicyResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = Resolving;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str();
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
            allowed(&policy, host, resolved).map(Vec::into_iter)
        })
    }
}

/// The addresses of `host` the policy allows; an error naming the first
/// refusal when none is.
fn allowed(
    policy: &OutboundPolicy,
    host: &str,
    resolved: Vec<SocketAddr>,
) -> io::Result<Vec<SocketAddr>> {
    let mut refusal = None;
    let kept: Vec<SocketAddr> = resolved
        .into_iter()
        .filter(|address| match policy.check_ip(address.ip()) {
            Ok(()) => true,
            Err(refused) => {
                refusal.get_or_insert(refused);
                false
            }
        })
        .collect();
    match (kept.is_empty(), refusal) {
        (true, Some(refused)) => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("url_not_allowed: {host} resolves to {refused}"),
        )),
        _ => Ok(kept),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_that_resolves_only_to_refused_addresses_is_an_error_naming_the_rule() {
        let policy = OutboundPolicy::default();
        let metadata: SocketAddr = "169.254.169.254:0".parse().expect("address");
        let public: SocketAddr = "93.184.216.34:0".parse().expect("address");
        let err = allowed(&policy, "evil.example", vec![metadata]).expect_err("refused");
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("169.254"), "{err}");
        let kept = allowed(&policy, "mixed.example", vec![metadata, public]).expect("kept");
        assert_eq!(kept, [public]);
    }
}

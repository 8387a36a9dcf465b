//! Everything beside tasks: events and endpoints, inbound routes and
//! callbacks, API keys, alert hooks, the audit log, health.

use crate::client::{Client, Repeat};
use crate::error::Error;
use crate::ops;
use crate::tasks::{pages, Cursor, Items};
use crate::types::{
    AlertHook, AlertHookChanges, AlertTest, AuditEntry, AuditFilter, CreatedKey, Endpoint,
    EndpointChanges, Inbound, InboundFilter, Invoke, Invoked, Key, NewAlertHook, NewEndpoint,
    NewEvent, NewKey, NewRoute, Page, Published, Route, Secret,
};
use futures_util::Stream;
use serde::Serialize;

#[derive(Serialize, Default)]
struct NoFilter {
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
}

#[derive(Serialize)]
struct Forward<'a> {
    target_url: &'a str,
}

impl Client {
    /// Publishes an event to every endpoint subscribed to its type.
    /// Without a `call_id` one is generated, so that retries publish once.
    pub async fn publish(&self, event: &NewEvent) -> Result<Published, Error> {
        let keyed;
        let event = if event.call_id.is_some() {
            event
        } else {
            keyed = NewEvent {
                call_id: Some(crate::tasks::fresh_idempotency_key()),
                ..event.clone()
            };
            &keyed
        };
        Ok(self
            .call(ops::PUBLISH_EVENT, &[], None, Some(event), Repeat::Safe)
            .await?
            .1)
    }

    pub async fn endpoints(&self, cursor: Option<&str>) -> Result<Page<Endpoint>, Error> {
        let query = Cursor {
            filter: &NoFilter::default(),
            cursor,
        };
        Ok(self
            .call(ops::LIST_ENDPOINTS, &[], Some(&query), None, Repeat::Safe)
            .await?
            .1)
    }

    /// Every endpoint, page after page.
    pub fn endpoints_stream(&self) -> impl Stream<Item = Result<Endpoint, Error>> + '_ {
        pages(move |cursor| async move { self.endpoints(cursor.as_deref()).await })
    }

    pub async fn endpoint(&self, name: &str) -> Result<Endpoint, Error> {
        Ok(self
            .call(ops::GET_ENDPOINT, &[name], None, None, Repeat::Safe)
            .await?
            .1)
    }

    /// Creates an endpoint; its secret is in the answer, this once.
    pub async fn create_endpoint(&self, endpoint: &NewEndpoint) -> Result<Endpoint, Error> {
        Ok(self
            .call(
                ops::CREATE_ENDPOINT,
                &[],
                None,
                Some(endpoint),
                Repeat::Unsafe,
            )
            .await?
            .1)
    }

    pub async fn update_endpoint(
        &self,
        name: &str,
        changes: &EndpointChanges,
    ) -> Result<Endpoint, Error> {
        Ok(self
            .call(
                ops::UPDATE_ENDPOINT,
                &[name],
                None,
                Some(changes),
                Repeat::Safe,
            )
            .await?
            .1)
    }

    pub async fn delete_endpoint(&self, name: &str) -> Result<(), Error> {
        self.call::<()>(ops::DELETE_ENDPOINT, &[name], None, None, Repeat::Safe)
            .await?;
        Ok(())
    }

    /// A new signing secret for the endpoint, shown this once.
    pub async fn rotate_secret(&self, name: &str) -> Result<Secret, Error> {
        Ok(self
            .call(ops::ROTATE_SECRET, &[name], None, None, Repeat::Unsafe)
            .await?
            .1)
    }

    /// Enables the endpoint: its waiting tasks are due at once, and events
    /// held while it was disabled for failing are delivered in order.
    pub async fn enable_endpoint(&self, name: &str) -> Result<Endpoint, Error> {
        Ok(self
            .call(ops::ENABLE_ENDPOINT, &[name], None, None, Repeat::Safe)
            .await?
            .1)
    }

    /// Calls the endpoint now and returns its answer.
    pub async fn invoke(&self, name: &str, call: &Invoke) -> Result<Invoked, Error> {
        Ok(self
            .call(
                ops::INVOKE_ENDPOINT,
                &[name],
                None,
                Some(call),
                Repeat::Unsafe,
            )
            .await?
            .1)
    }

    /// Routes of vendor callbacks, optionally of one namespace.
    pub async fn routes(
        &self,
        namespace: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<Page<Route>, Error> {
        let filter = NoFilter {
            namespace: namespace.map(str::to_string),
        };
        let query = Cursor {
            filter: &filter,
            cursor,
        };
        Ok(self
            .call(ops::LIST_ROUTES, &[], Some(&query), None, Repeat::Safe)
            .await?
            .1)
    }

    pub async fn route(&self, namespace: &str, key: &str) -> Result<Route, Error> {
        Ok(self
            .call(ops::GET_ROUTE, &[namespace, key], None, None, Repeat::Safe)
            .await?
            .1)
    }

    /// Creates or replaces the route of `namespace`/`key`.
    pub async fn upsert_route(&self, route: &NewRoute) -> Result<Route, Error> {
        Ok(self
            .call(ops::UPSERT_ROUTE, &[], None, Some(route), Repeat::Safe)
            .await?
            .1)
    }

    pub async fn delete_route(&self, namespace: &str, key: &str) -> Result<(), Error> {
        self.call::<()>(
            ops::DELETE_ROUTE,
            &[namespace, key],
            None,
            None,
            Repeat::Safe,
        )
        .await?;
        Ok(())
    }

    /// Vendor callbacks as received, newest first.
    pub async fn inbound(
        &self,
        filter: &InboundFilter,
        cursor: Option<&str>,
    ) -> Result<Page<Inbound>, Error> {
        let query = Cursor { filter, cursor };
        Ok(self
            .call(ops::LIST_INBOUND, &[], Some(&query), None, Repeat::Safe)
            .await?
            .1)
    }

    /// Vendor callbacks no route matched.
    pub async fn unrouted(
        &self,
        filter: &InboundFilter,
        cursor: Option<&str>,
    ) -> Result<Page<Inbound>, Error> {
        let query = Cursor { filter, cursor };
        Ok(self
            .call(ops::LIST_UNROUTED, &[], Some(&query), None, Repeat::Safe)
            .await?
            .1)
    }

    pub async fn inbound_callback(&self, id: &str) -> Result<Inbound, Error> {
        Ok(self
            .call(ops::GET_INBOUND, &[id], None, None, Repeat::Safe)
            .await?
            .1)
    }

    /// Forwards an unrouted callback to `target_url`, as a task.
    pub async fn forward_inbound(&self, id: &str, target_url: &str) -> Result<Inbound, Error> {
        let body = Forward { target_url };
        Ok(self
            .call(
                ops::FORWARD_INBOUND,
                &[id],
                None,
                Some(&body),
                Repeat::Unsafe,
            )
            .await?
            .1)
    }

    pub async fn keys(&self) -> Result<Vec<Key>, Error> {
        let (_, list): (_, Items<Key>) = self
            .call(ops::LIST_KEYS, &[], None, None, Repeat::Safe)
            .await?;
        Ok(list.items)
    }

    /// Creates an API key; its secret is in the answer, this once.
    pub async fn create_key(&self, key: &NewKey) -> Result<CreatedKey, Error> {
        Ok(self
            .call(ops::CREATE_KEY, &[], None, Some(key), Repeat::Unsafe)
            .await?
            .1)
    }

    pub async fn revoke_key(&self, id: &str) -> Result<Key, Error> {
        Ok(self
            .call(ops::REVOKE_KEY, &[id], None, None, Repeat::Safe)
            .await?
            .1)
    }

    pub async fn alert_hooks(&self) -> Result<Vec<AlertHook>, Error> {
        let (_, list): (_, Items<AlertHook>) = self
            .call(ops::LIST_HOOKS, &[], None, None, Repeat::Safe)
            .await?;
        Ok(list.items)
    }

    pub async fn alert_hook(&self, id: &str) -> Result<AlertHook, Error> {
        Ok(self
            .call(ops::GET_HOOK, &[id], None, None, Repeat::Safe)
            .await?
            .1)
    }

    pub async fn create_alert_hook(&self, hook: &NewAlertHook) -> Result<AlertHook, Error> {
        Ok(self
            .call(ops::CREATE_HOOK, &[], None, Some(hook), Repeat::Unsafe)
            .await?
            .1)
    }

    pub async fn update_alert_hook(
        &self,
        id: &str,
        changes: &AlertHookChanges,
    ) -> Result<AlertHook, Error> {
        Ok(self
            .call(ops::UPDATE_HOOK, &[id], None, Some(changes), Repeat::Safe)
            .await?
            .1)
    }

    pub async fn delete_alert_hook(&self, id: &str) -> Result<(), Error> {
        self.call::<()>(ops::DELETE_HOOK, &[id], None, None, Repeat::Safe)
            .await?;
        Ok(())
    }

    /// Sends a test message to the hook now and returns its answer.
    pub async fn test_alert_hook(&self, id: &str) -> Result<AlertTest, Error> {
        Ok(self
            .call(ops::TEST_HOOK, &[id], None, None, Repeat::Unsafe)
            .await?
            .1)
    }

    /// The audit log, newest first.
    pub async fn audit(
        &self,
        filter: &AuditFilter,
        cursor: Option<&str>,
    ) -> Result<Page<AuditEntry>, Error> {
        let query = Cursor { filter, cursor };
        Ok(self
            .call(ops::LIST_AUDIT, &[], Some(&query), None, Repeat::Safe)
            .await?
            .1)
    }

    /// `/healthz`: the process answers.
    pub async fn health(&self) -> Result<serde_json::Value, Error> {
        Ok(self
            .call(ops::HEALTHZ, &[], None, None, Repeat::Safe)
            .await?
            .1)
    }

    /// `/readyz`: the store (and Redis, when configured) answer.
    pub async fn ready(&self) -> Result<serde_json::Value, Error> {
        Ok(self
            .call(ops::READYZ, &[], None, None, Repeat::Safe)
            .await?
            .1)
    }
}

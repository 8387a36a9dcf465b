//! Every operation of the API, by method and path. The client calls them
//! only through these, and `tests/contract.rs` checks that the server's
//! OpenAPI document has exactly these operations, so a new one on the
//! server is noticed here.

/// One operation: a method and a path template whose `{...}` parts are
/// filled in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    pub method: &'static str,
    pub path: &'static str,
}

const fn op(method: &'static str, path: &'static str) -> Op {
    Op { method, path }
}

impl Op {
    /// The path with `params` in its `{...}` parts, each percent-encoded
    /// as one segment.
    pub fn path_with(&self, params: &[&str]) -> String {
        let mut out = String::with_capacity(self.path.len() + 40);
        let mut params = params.iter();
        let mut rest = self.path;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
            if let Some(value) = params.next() {
                out.extend(url::form_urlencoded::byte_serialize(value.as_bytes()).map(
                    // form encoding writes a space as '+'; a path wants %20.
                    |s| if s == "+" { "%20" } else { s },
                ));
            }
            rest = &rest[close..];
        }
        out.push_str(rest);
        out
    }
}

pub const HEALTHZ: Op = op("GET", "/healthz");
pub const READYZ: Op = op("GET", "/readyz");
pub const CREATE_TASK: Op = op("POST", "/api/v1/tasks");
pub const CREATE_TASKS: Op = op("POST", "/api/v1/tasks/batch");
pub const LIST_TASKS: Op = op("GET", "/api/v1/tasks");
pub const GET_TASK: Op = op("GET", "/api/v1/tasks/{task_id}");
pub const RETRY_TASK: Op = op("POST", "/api/v1/tasks/{task_id}/retry");
pub const CANCEL_TASK: Op = op("POST", "/api/v1/tasks/{task_id}/cancel");
pub const STREAM_ATTEMPTS: Op = op("GET", "/api/v1/attempts/stream");
pub const RETRY_TASKS: Op = op("POST", "/api/v1/tasks/retry");
pub const CANCEL_TASKS: Op = op("POST", "/api/v1/tasks/cancel");
pub const LIST_BUCKETS: Op = op("GET", "/api/v1/failed-buckets");
pub const RETRY_BUCKET: Op = op("POST", "/api/v1/failed-buckets/retry");
pub const LIST_BREAKERS: Op = op("GET", "/api/v1/breakers");
pub const PUBLISH_EVENT: Op = op("POST", "/api/v1/events");
pub const LIST_ENDPOINTS: Op = op("GET", "/api/v1/endpoints");
pub const CREATE_ENDPOINT: Op = op("POST", "/api/v1/endpoints");
pub const GET_ENDPOINT: Op = op("GET", "/api/v1/endpoints/{name}");
pub const UPDATE_ENDPOINT: Op = op("PATCH", "/api/v1/endpoints/{name}");
pub const DELETE_ENDPOINT: Op = op("DELETE", "/api/v1/endpoints/{name}");
pub const ROTATE_SECRET: Op = op("POST", "/api/v1/endpoints/{name}/rotate-secret");
pub const ENABLE_ENDPOINT: Op = op("POST", "/api/v1/endpoints/{name}/enable");
pub const INVOKE_ENDPOINT: Op = op("POST", "/api/v1/endpoints/{name}/invoke");
pub const LIST_ROUTES: Op = op("GET", "/api/v1/routes");
pub const UPSERT_ROUTE: Op = op("POST", "/api/v1/routes");
pub const GET_ROUTE: Op = op("GET", "/api/v1/routes/{namespace}/{key}");
pub const DELETE_ROUTE: Op = op("DELETE", "/api/v1/routes/{namespace}/{key}");
pub const LIST_INBOUND: Op = op("GET", "/api/v1/inbound");
pub const LIST_UNROUTED: Op = op("GET", "/api/v1/inbound/unrouted");
pub const GET_INBOUND: Op = op("GET", "/api/v1/inbound/{id}");
pub const FORWARD_INBOUND: Op = op("POST", "/api/v1/inbound/{id}/forward");
pub const LIST_KEYS: Op = op("GET", "/api/v1/keys");
pub const CREATE_KEY: Op = op("POST", "/api/v1/keys");
pub const REVOKE_KEY: Op = op("DELETE", "/api/v1/keys/{id}");
pub const LIST_HOOKS: Op = op("GET", "/api/v1/alert-hooks");
pub const CREATE_HOOK: Op = op("POST", "/api/v1/alert-hooks");
pub const GET_HOOK: Op = op("GET", "/api/v1/alert-hooks/{id}");
pub const UPDATE_HOOK: Op = op("PATCH", "/api/v1/alert-hooks/{id}");
pub const DELETE_HOOK: Op = op("DELETE", "/api/v1/alert-hooks/{id}");
pub const TEST_HOOK: Op = op("POST", "/api/v1/alert-hooks/{id}/test");
pub const LIST_AUDIT: Op = op("GET", "/api/v1/audit");

/// Every operation the client calls.
pub const ALL: &[Op] = &[
    HEALTHZ,
    READYZ,
    CREATE_TASK,
    CREATE_TASKS,
    LIST_TASKS,
    GET_TASK,
    RETRY_TASK,
    CANCEL_TASK,
    STREAM_ATTEMPTS,
    RETRY_TASKS,
    CANCEL_TASKS,
    LIST_BUCKETS,
    RETRY_BUCKET,
    LIST_BREAKERS,
    PUBLISH_EVENT,
    LIST_ENDPOINTS,
    CREATE_ENDPOINT,
    GET_ENDPOINT,
    UPDATE_ENDPOINT,
    DELETE_ENDPOINT,
    ROTATE_SECRET,
    ENABLE_ENDPOINT,
    INVOKE_ENDPOINT,
    LIST_ROUTES,
    UPSERT_ROUTE,
    GET_ROUTE,
    DELETE_ROUTE,
    LIST_INBOUND,
    LIST_UNROUTED,
    GET_INBOUND,
    FORWARD_INBOUND,
    LIST_KEYS,
    CREATE_KEY,
    REVOKE_KEY,
    LIST_HOOKS,
    CREATE_HOOK,
    GET_HOOK,
    UPDATE_HOOK,
    DELETE_HOOK,
    TEST_HOOK,
    LIST_AUDIT,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_parameters_are_filled_in_order_and_encoded_as_one_segment() {
        assert_eq!(GET_TASK.path_with(&["abc"]), "/api/v1/tasks/abc");
        assert_eq!(
            GET_ROUTE.path_with(&["wx pay", "a/b?c"]),
            "/api/v1/routes/wx%20pay/a%2Fb%3Fc"
        );
        assert_eq!(LIST_TASKS.path_with(&[]), "/api/v1/tasks");
    }
}

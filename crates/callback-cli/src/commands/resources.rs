//! Everything else the API holds: failed buckets, endpoints, events,
//! routes, keys, alert hooks.

use super::parse_json;
use crate::output::{self, or_dash, table, time};
use crate::{Context, Failure};
use callback_client::{NewAlertHook, NewEndpoint, NewEvent, NewKey, NewRoute, RetryBucket};
use clap::Subcommand;
use futures_util::TryStreamExt;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum BucketCommand {
    /// The buckets, newest first.
    List,
    /// Re-send a bucket's tasks.
    Retry {
        /// The bucket, YYYYMMDDHHmm.
        date: String,
        /// Send them here instead of their own URL.
        #[arg(long)]
        to: Option<String>,
    },
}

pub(super) async fn buckets(ctx: &Context, command: &BucketCommand) -> Result<(), Failure> {
    match command {
        BucketCommand::List => {
            let buckets = ctx.client.buckets().await?;
            if ctx.json {
                output::json(&buckets);
            } else {
                let rows: Vec<Vec<String>> = buckets
                    .iter()
                    .map(|b| vec![b.date.clone(), b.size.to_string(), b.retry.to_string()])
                    .collect();
                table(&["BUCKET", "TASKS", "RE-SENT"], &rows);
            }
        }
        BucketCommand::Retry { date, to } => {
            let retried = ctx
                .client
                .retry_bucket(&RetryBucket {
                    date: date.clone(),
                    target_url: to.clone(),
                    retry: None,
                })
                .await?;
            if ctx.json {
                output::json(&retried);
            } else {
                println!(
                    "re-sent {} task(s) of bucket {}",
                    retried.queued, retried.date
                );
            }
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum EndpointCommand {
    List,
    Get {
        name: String,
    },
    /// Create an endpoint; its secret is shown once.
    Create {
        name: String,
        #[arg(value_name = "URL")]
        target: String,
        /// An event type it takes; repeatable. None: every type.
        #[arg(long = "event-type")]
        event_types: Vec<String>,
        #[arg(long)]
        app: Option<String>,
        /// standard or md5_legacy.
        #[arg(long)]
        signature: Option<String>,
    },
    Delete {
        name: String,
    },
    /// A new signing secret, shown once.
    RotateSecret {
        name: String,
    },
    /// Enable it: waiting tasks are due at once, held events delivered in
    /// order.
    Enable {
        name: String,
    },
    /// Disable it: its tasks wait, new events go to no task.
    Disable {
        name: String,
    },
}

pub(super) async fn endpoints(ctx: &Context, command: &EndpointCommand) -> Result<(), Failure> {
    let client = &ctx.client;
    let show = |endpoint: &callback_client::Endpoint| {
        if ctx.json {
            output::json(endpoint);
        } else {
            println!(
                "{} {} ({})",
                endpoint.name,
                endpoint.url,
                if endpoint.enabled {
                    "enabled"
                } else {
                    "disabled"
                }
            );
            if let Some(secret) = &endpoint.secret {
                println!("secret: {secret}  (shown once: keep it now)");
            }
        }
    };
    match command {
        EndpointCommand::List => {
            let all: Vec<callback_client::Endpoint> =
                client.endpoints_stream().try_collect().await?;
            if ctx.json {
                output::json(&all);
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|e| {
                        vec![
                            e.name.clone(),
                            e.url.clone(),
                            if e.enabled { "yes".into() } else { "no".into() },
                            if e.event_types.is_empty() {
                                "*".into()
                            } else {
                                e.event_types.join(",")
                            },
                            or_dash(e.app.as_deref()),
                        ]
                    })
                    .collect();
                table(&["NAME", "URL", "ENABLED", "EVENTS", "APP"], &rows);
            }
        }
        EndpointCommand::Get { name } => show(&client.endpoint(name).await?),
        EndpointCommand::Create {
            name,
            target,
            event_types,
            app,
            signature,
        } => {
            let endpoint = NewEndpoint {
                name: name.clone(),
                url: target.clone(),
                event_types: (!event_types.is_empty()).then(|| event_types.clone()),
                app: app.clone(),
                signature: signature.clone(),
                ..NewEndpoint::default()
            };
            show(&client.create_endpoint(&endpoint).await?);
        }
        EndpointCommand::Delete { name } => {
            client.delete_endpoint(name).await?;
            if !ctx.json {
                println!("deleted {name}");
            }
        }
        EndpointCommand::RotateSecret { name } => {
            let secret = client.rotate_secret(name).await?;
            if ctx.json {
                output::json(&secret);
            } else {
                println!("secret: {}  (shown once: keep it now)", secret.secret);
            }
        }
        EndpointCommand::Enable { name } => show(&client.enable_endpoint(name).await?),
        EndpointCommand::Disable { name } => {
            let changes = callback_client::EndpointChanges {
                enabled: Some(false),
                ..Default::default()
            };
            show(&client.update_endpoint(name, &changes).await?);
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum EventCommand {
    /// Publish an event to every endpoint subscribed to its type.
    Publish {
        event_type: String,
        /// The payload, JSON.
        #[arg(long, short = 'd')]
        data: String,
        #[arg(long)]
        app: Option<String>,
        /// Publishing the same id again creates nothing; generated when
        /// not given.
        #[arg(long)]
        call_id: Option<String>,
        /// Each endpoint receives the events of one key one at a time, in
        /// the order they were published.
        #[arg(long)]
        ordering_key: Option<String>,
    },
}

pub(super) async fn events(ctx: &Context, command: &EventCommand) -> Result<(), Failure> {
    let EventCommand::Publish {
        event_type,
        data,
        app,
        call_id,
        ordering_key,
    } = command;
    let published = ctx
        .client
        .publish(&NewEvent {
            event_type: event_type.clone(),
            payload: parse_json(data, "--data")?,
            app: app.clone(),
            call_id: call_id.clone(),
            ordering_key: ordering_key.clone(),
        })
        .await?;
    if ctx.json {
        output::json(&published);
    } else {
        println!(
            "{} -> {} task(s)",
            published.call_id,
            published.task_ids.len()
        );
        for id in &published.task_ids {
            println!("  {id}");
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum RouteCommand {
    List {
        #[arg(long)]
        namespace: Option<String>,
    },
    /// Route vendor callbacks of NAMESPACE/KEY to URL (creates or replaces).
    Set {
        namespace: String,
        key: String,
        #[arg(value_name = "URL")]
        target: String,
        /// Forget the route after this long, e.g. 24h.
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<Duration>,
        #[arg(long)]
        remark: Option<String>,
    },
    Delete {
        namespace: String,
        key: String,
    },
}

pub(super) async fn routes(ctx: &Context, command: &RouteCommand) -> Result<(), Failure> {
    match command {
        RouteCommand::List { namespace } => {
            let mut all = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page = ctx
                    .client
                    .routes(namespace.as_deref(), cursor.as_deref())
                    .await?;
                all.extend(page.items);
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            if ctx.json {
                output::json(&all);
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|r| {
                        vec![
                            r.namespace.clone(),
                            r.key.clone(),
                            r.target_url.clone(),
                            r.expires_at.as_ref().map_or_else(|| "-".into(), time),
                        ]
                    })
                    .collect();
                table(&["NAMESPACE", "KEY", "TARGET", "EXPIRES"], &rows);
            }
        }
        RouteCommand::Set {
            namespace,
            key,
            target,
            ttl,
            remark,
        } => {
            let route = ctx
                .client
                .upsert_route(&NewRoute {
                    namespace: namespace.clone(),
                    key: key.clone(),
                    target_url: target.clone(),
                    ttl_s: ttl.map(|t| u32::try_from(t.as_secs()).unwrap_or(u32::MAX)),
                    remark: remark.clone(),
                    ..NewRoute::default()
                })
                .await?;
            if ctx.json {
                output::json(&route);
            } else {
                println!("{}/{} -> {}", route.namespace, route.key, route.target_url);
            }
        }
        RouteCommand::Delete { namespace, key } => {
            ctx.client.delete_route(namespace, key).await?;
            if !ctx.json {
                println!("deleted {namespace}/{key}");
            }
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    List,
    /// Create a key; its secret is shown once.
    Create {
        name: String,
        /// A scope, e.g. tasks:write; repeatable.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Confine the key to one application.
        #[arg(long)]
        app: Option<String>,
        /// An address or network it may be used from; repeatable.
        #[arg(long = "allow-ip")]
        allow_ips: Vec<String>,
    },
    Revoke {
        id: String,
    },
}

pub(super) async fn keys(ctx: &Context, command: &KeyCommand) -> Result<(), Failure> {
    match command {
        KeyCommand::List => {
            let keys = ctx.client.keys().await?;
            if ctx.json {
                output::json(&keys);
            } else {
                let rows: Vec<Vec<String>> = keys
                    .iter()
                    .map(|k| {
                        vec![
                            k.id.clone(),
                            k.name.clone(),
                            k.scopes.join(","),
                            or_dash(k.app.as_deref()),
                            k.last_used_at.as_ref().map_or_else(|| "-".into(), time),
                            if k.revoked_at.is_some() {
                                "revoked".into()
                            } else {
                                "active".into()
                            },
                        ]
                    })
                    .collect();
                table(
                    &["ID", "NAME", "SCOPES", "APP", "LAST USED", "STATE"],
                    &rows,
                );
            }
        }
        KeyCommand::Create {
            name,
            scopes,
            app,
            allow_ips,
        } => {
            let created = ctx
                .client
                .create_key(&NewKey {
                    name: name.clone(),
                    scopes: scopes.clone(),
                    app: app.clone(),
                    allow_ips: allow_ips.clone(),
                    ..NewKey::default()
                })
                .await?;
            if ctx.json {
                output::json(&created);
            } else {
                println!("{} {}", created.key.id, created.key.name);
                println!("key: {}  (shown once: keep it now)", created.secret);
            }
        }
        KeyCommand::Revoke { id } => {
            let key = ctx.client.revoke_key(id).await?;
            if ctx.json {
                output::json(&key);
            } else {
                println!("revoked {} ({})", key.id, key.name);
            }
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    List,
    /// Add a hook: dingtalk, wecom or webhook.
    Add {
        kind: String,
        #[arg(value_name = "URL")]
        target: String,
        #[arg(long)]
        secret: Option<String>,
        #[arg(long)]
        remark: Option<String>,
    },
    /// Send a test message to a hook and show what it answered.
    Test {
        hook: String,
    },
}

pub(super) async fn alerts(ctx: &Context, command: &AlertCommand) -> Result<(), Failure> {
    match command {
        AlertCommand::List => {
            let hooks = ctx.client.alert_hooks().await?;
            if ctx.json {
                output::json(&hooks);
            } else {
                let rows: Vec<Vec<String>> = hooks
                    .iter()
                    .map(|h| {
                        vec![
                            h.id.clone(),
                            h.kind.clone(),
                            h.url.clone(),
                            if h.enabled { "yes".into() } else { "no".into() },
                            or_dash(h.remark.as_deref()),
                        ]
                    })
                    .collect();
                table(&["ID", "KIND", "URL", "ENABLED", "REMARK"], &rows);
            }
        }
        AlertCommand::Add {
            kind,
            target,
            secret,
            remark,
        } => {
            let hook = ctx
                .client
                .create_alert_hook(&NewAlertHook {
                    kind: kind.clone(),
                    url: target.clone(),
                    secret: secret.clone(),
                    remark: remark.clone(),
                    ..NewAlertHook::default()
                })
                .await?;
            if ctx.json {
                output::json(&hook);
            } else {
                println!("{} {} {}", hook.id, hook.kind, hook.url);
            }
        }
        AlertCommand::Test { hook } => {
            let answer = ctx.client.test_alert_hook(hook).await?;
            if ctx.json {
                output::json(&answer);
            } else {
                println!(
                    "{} (HTTP {}): {}",
                    if answer.ok { "delivered" } else { "refused" },
                    or_dash(answer.status),
                    answer
                        .error
                        .clone()
                        .unwrap_or_else(|| answer.answer.to_string())
                );
            }
            if !answer.ok {
                return Err(Failure {
                    code: 1,
                    message: "the hook did not take the test message".into(),
                });
            }
        }
    }
    Ok(())
}

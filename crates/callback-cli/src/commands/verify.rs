//! A receiver's check of a saved request.

use crate::output;
use crate::request::RawRequest;
use crate::Failure;
use callback_client::verify::{verify_md5_legacy, verify_standard, StandardHeaders};
use chrono::Utc;
use clap::Args;
use std::io::Read;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The endpoint's secret: whsec_... (Standard Webhooks), or the legacy
    /// secret of an md5_legacy endpoint.
    #[arg(long, env = "CBC_WEBHOOK_SECRET", hide_env_values = true)]
    secret: String,
}

/// Reads a whole request on stdin and checks its signature.
pub fn verify(args: &VerifyArgs, json: bool) -> Result<(), Failure> {
    let mut raw = Vec::new();
    std::io::stdin()
        .read_to_end(&mut raw)
        .map_err(|e| Failure::usage(format!("cannot read the request on stdin: {e}")))?;
    let request = RawRequest::parse(&raw).map_err(Failure::usage)?;
    let (scheme, verdict) = match request.header("webhook-signature") {
        Some(signature) => {
            let headers = StandardHeaders {
                id: request.header("webhook-id").unwrap_or_default(),
                timestamp: request.header("webhook-timestamp").unwrap_or_default(),
                signature,
            };
            (
                "standard",
                verify_standard(&args.secret, &headers, &request.body, Utc::now()),
            )
        }
        None => ("md5_legacy", verify_md5_legacy(&args.secret, &request.body)),
    };
    if json {
        output::json(&serde_json::json!({
            "scheme": scheme,
            "valid": verdict.is_ok(),
            "error": verdict.as_ref().err().map(ToString::to_string),
        }));
    }
    match verdict {
        Ok(()) => {
            if !json {
                println!("valid {scheme} signature");
            }
            Ok(())
        }
        Err(err) => Err(Failure {
            code: 1,
            message: format!("invalid {scheme} signature: {err}"),
        }),
    }
}

//! Bearer-token authentication for everything under `/api/v1`.

use crate::ApiError;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, Error};
use secrecy::{ExposeSecret, SecretString};

/// The admin token every API request must present.
#[derive(Clone)]
pub struct AdminToken(pub SecretString);

pub async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let expected = req.app_data::<web::Data<AdminToken>>();
    let allowed = match (presented, expected) {
        (Some(presented), Some(expected)) => constant_time_eq::constant_time_eq(
            presented.as_bytes(),
            expected.0.expose_secret().as_bytes(),
        ),
        _ => false,
    };
    if !allowed {
        return Err(ApiError::Unauthorized.into());
    }
    next.call(req).await
}

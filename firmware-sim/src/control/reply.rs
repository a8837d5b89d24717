//! WebDriver's response convention for every control API answer: success is
//! `200 {"value": ...}`; failure is a 4xx/5xx with
//! `{"value": {"error": CODE, "message": TEXT, "stacktrace": ""}}`.
//!
//! The error codes are WebDriver's where one fits (`invalid argument`,
//! `unknown command`, `unknown method`, `unsupported operation`, `timeout`,
//! `unknown error`), plus the names the issue asks for where the WebAuthn
//! automation spec would say `invalid argument` (`no such authenticator`, `no
//! such credential`), and `unauthorized`/`forbidden` for the control plane's
//! own refusals, which WebDriver has no code for.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

/// The error codes the control API answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request's parameters are malformed or out of range (400).
    InvalidArgument,
    /// No authenticator (key) has this id (404).
    NoSuchAuthenticator,
    /// The authenticator holds no credential with this id (404).
    NoSuchCredential,
    /// No command at this path (404).
    UnknownCommand,
    /// The path exists but not with this method (405).
    UnknownMethod,
    /// The key cannot do this (for example UV commands on a key without
    /// built-in user verification). WebDriver maps this code to 500; we
    /// answer 400 (or 409 for a state conflict) because the request, not the
    /// server, is at fault, and 5xx is kept for real server faults.
    UnsupportedOperation,
    /// The request took too long to arrive or to answer (408).
    Timeout,
    /// No or a wrong bearer token (401).
    Unauthorized,
    /// Refused: a browser request on another site's behalf, or a Host that is
    /// not this server's (403).
    Forbidden,
    /// The server could not do what was asked (for example a key failed to
    /// power up) (500/503).
    UnknownError,
}

impl ErrorCode {
    /// The code as it appears in `value.error`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid argument",
            ErrorCode::NoSuchAuthenticator => "no such authenticator",
            ErrorCode::NoSuchCredential => "no such credential",
            ErrorCode::UnknownCommand => "unknown command",
            ErrorCode::UnknownMethod => "unknown method",
            ErrorCode::UnsupportedOperation => "unsupported operation",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::UnknownError => "unknown error",
        }
    }

    /// The HTTP status this code is answered with unless told otherwise.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidArgument | ErrorCode::UnsupportedOperation => StatusCode::BAD_REQUEST,
            ErrorCode::NoSuchAuthenticator
            | ErrorCode::NoSuchCredential
            | ErrorCode::UnknownCommand => StatusCode::NOT_FOUND,
            ErrorCode::UnknownMethod => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Timeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::UnknownError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A failed request: an error code, an HTTP status and a message for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// The WebDriver-style error code.
    pub code: ErrorCode,
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong and, where it helps, what to send instead.
    pub message: String,
}

impl ApiError {
    /// An error with the code's usual status.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            status: code.status(),
            message: message.into(),
        }
    }

    /// `invalid argument` (400).
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    /// The same error with another HTTP status.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// The JSON body of this error.
    pub fn body(&self) -> Value {
        json!({
            "value": {
                "error": self.code.as_str(),
                "message": self.message,
                "stacktrace": "",
            }
        })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, json_body(&self.body())).into_response();
        if self.code == ErrorCode::Unauthorized {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"ferrokey\""),
            );
        }
        response
    }
}

/// A successful answer: `200 {"value": ...}`.
#[derive(Debug, PartialEq)]
pub struct Reply(pub Value);

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let body = json!({ "value": self.0 });
        (StatusCode::OK, json_body(&body)).into_response()
    }
}

/// What handlers return.
pub type ApiResult = Result<Reply, ApiError>;

/// A JSON body with the headers every answer carries.
fn json_body(value: &Value) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        format!("{value}\n"),
    )
}

/// A JSON request body whose failures are WebDriver errors (`invalid
/// argument`, with 413 when the body is too large and 415 when it is not sent
/// as `application/json`).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

/// Turns axum's JSON rejections into WebDriver errors.
fn json_rejection(rejection: &JsonRejection) -> ApiError {
    let status = rejection.status();
    let message = match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            "send the parameters as a JSON object with Content-Type: application/json".to_string()
        }
        JsonRejection::JsonDataError(e) => format!("bad parameters: {}", e.body_text()),
        JsonRejection::JsonSyntaxError(e) => format!("the body is not JSON: {}", e.body_text()),
        other => other.body_text(),
    };
    let error = ApiError::invalid_argument(message);
    match status {
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            error.with_status(status)
        }
        _ => error,
    }
}

/// Path parameters whose failures are WebDriver errors (`invalid argument`).
#[derive(Debug)]
pub struct PathParams<T>(pub T);

impl<S, T> FromRequestParts<S> for PathParams<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(PathParams(value)),
            Err(rejection) => Err(path_rejection(&rejection)),
        }
    }
}

fn path_rejection(rejection: &PathRejection) -> ApiError {
    ApiError::invalid_argument(format!("bad path: {}", rejection.body_text()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;

    async fn parts(response: Response) -> (StatusCode, Value, Option<HeaderValue>) {
        let status = response.status();
        let auth = response.headers().get(header::WWW_AUTHENTICATE).cloned();
        let bytes = to_bytes(response.into_body(), 1 << 16).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap(), auth)
    }

    #[tokio::test]
    async fn success_and_errors_follow_webdriver() {
        let (status, body, _) = parts(Reply(json!("abc")).into_response()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({"value": "abc"}));

        let (status, body, auth) =
            parts(ApiError::new(ErrorCode::NoSuchCredential, "gone").into_response()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["value"]["error"], "no such credential");
        assert_eq!(body["value"]["message"], "gone");
        assert!(auth.is_none());

        let (status, _, auth) =
            parts(ApiError::new(ErrorCode::Unauthorized, "token").into_response()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(auth.is_some());

        let conflict = ApiError::new(ErrorCode::UnsupportedOperation, "no uv")
            .with_status(StatusCode::CONFLICT);
        assert_eq!(
            parts(conflict.into_response()).await.0,
            StatusCode::CONFLICT
        );
    }

    #[test]
    fn every_code_has_a_distinct_name_and_a_client_or_server_status() {
        let codes = [
            ErrorCode::InvalidArgument,
            ErrorCode::NoSuchAuthenticator,
            ErrorCode::NoSuchCredential,
            ErrorCode::UnknownCommand,
            ErrorCode::UnknownMethod,
            ErrorCode::UnsupportedOperation,
            ErrorCode::Timeout,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::UnknownError,
        ];
        let mut names: Vec<_> = codes.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), codes.len());
        for code in codes {
            let status = code.status();
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{code:?}"
            );
            // Only real server faults are 5xx.
            assert_eq!(status.is_server_error(), code == ErrorCode::UnknownError);
        }
    }
}

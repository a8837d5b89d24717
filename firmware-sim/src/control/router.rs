//! The control API's routes, built from one table ([`routes`]) that the
//! OpenAPI document (`firmware-sim/openapi.json`) is checked against, and the
//! layers every request goes through: the [`super::guard`] checks first, then
//! CORS for explicitly allowed origins, a body limit, a time limit, and a log
//! line per request.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::guard::{self, Guard};
use super::reply::{ApiError, ErrorCode};
use super::{rig, sse, webauthn, Shared};

/// The largest request body accepted (credentials with a large blob fit easily).
pub const MAX_BODY: usize = 256 * 1024;

/// How long a handler may take (reading the body included).
pub const HANDLER_TIMEOUT: Duration = Duration::from_secs(30);

/// The OpenAPI document of the whole API, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// One route: its method, its path as the OpenAPI document writes it, its
/// path in axum's syntax, and its handler.
pub struct Route {
    /// The HTTP method.
    pub method: Method,
    /// The path as documented (`/usb{n}/power/{state}`).
    pub documented: String,
    /// The path as axum matches it (`/{port}/power/{state}`).
    pub matched: String,
    handler: MethodRouter<Shared>,
}

impl Route {
    fn new<H, T>(method: Method, documented: &str, matched: &str, handler: H) -> Self
    where
        H: axum::handler::Handler<T, Shared>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
        Route {
            method,
            documented: documented.to_string(),
            matched: matched.to_string(),
            handler: on(filter, handler),
        }
    }

    /// A WebDriver route: served under `/webauthn/...` and under
    /// `/session/{sessionId}/webauthn/...`, documented as both.
    fn webdriver<H, T>(method: Method, path: &str, handler: H) -> [Self; 2]
    where
        H: axum::handler::Handler<T, Shared> + Clone,
        T: 'static,
    {
        let session = format!("/session/{{sessionId}}{path}");
        [
            Route::new(method.clone(), path, path, handler.clone()),
            Route::new(method, &session, &session, handler),
        ]
    }
}

/// Every route of the API.
pub fn routes() -> Vec<Route> {
    use webauthn::authenticators as a;
    use webauthn::credentials as c;
    use webauthn::pin;
    use Method as M;
    let mut routes = vec![
        Route::new(M::GET, "/openapi.json", "/openapi.json", openapi),
        Route::new(M::GET, "/events", "/events", sse::all),
        Route::new(M::GET, "/", "/", rig::all),
        Route::new(M::GET, "/usb{n}", "/{port}", rig::one),
        Route::new(
            M::GET,
            "/usb{n}/power/{state}",
            "/{port}/power/{state}",
            rig::power,
        ),
        Route::new(
            M::POST,
            "/usb{n}/power/{state}",
            "/{port}/power/{state}",
            rig::power,
        ),
        Route::new(
            M::GET,
            "/usb{n}/touch/{state}",
            "/{port}/touch/{state}",
            rig::touch,
        ),
        Route::new(
            M::POST,
            "/usb{n}/touch/{state}",
            "/{port}/touch/{state}",
            rig::touch,
        ),
        Route::new(
            M::POST,
            "/usb{n}/presence/{mode}",
            "/{port}/presence/{mode}",
            rig::presence,
        ),
        Route::new(M::POST, "/usb{n}/uv/{mode}", "/{port}/uv/{mode}", rig::uv),
    ];
    const ONE: &str = "/webauthn/authenticator/{authenticatorId}";
    let webdriver = [
        Route::webdriver(M::GET, "/webauthn/authenticators", a::list),
        Route::webdriver(M::POST, "/webauthn/authenticator", a::add),
        Route::webdriver(M::GET, ONE, a::get),
        Route::webdriver(M::DELETE, ONE, a::remove),
        Route::webdriver(M::POST, &format!("{ONE}/uv"), a::set_uv),
        Route::webdriver(M::POST, &format!("{ONE}/presence"), a::set_presence),
        Route::webdriver(M::POST, &format!("{ONE}/power"), a::set_power_of),
        Route::webdriver(M::POST, &format!("{ONE}/touch"), a::set_touch),
        Route::webdriver(M::GET, &format!("{ONE}/bio"), webauthn::bio::status),
        Route::webdriver(
            M::POST,
            &format!("{ONE}/bio/finger"),
            webauthn::bio::place_finger,
        ),
        Route::webdriver(
            M::POST,
            &format!("{ONE}/bio/fail-next-match"),
            webauthn::bio::fail_next_match,
        ),
        Route::webdriver(M::GET, &format!("{ONE}/events"), sse::one),
        Route::webdriver(M::POST, &format!("{ONE}/credential"), c::add),
        Route::webdriver(M::GET, &format!("{ONE}/credentials"), c::list),
        Route::webdriver(M::DELETE, &format!("{ONE}/credentials"), c::remove_all),
        Route::webdriver(
            M::DELETE,
            &format!("{ONE}/credentials/{{credentialId}}"),
            c::remove,
        ),
        Route::webdriver(
            M::POST,
            &format!("{ONE}/credentials/{{credentialId}}/props"),
            c::set_props,
        ),
        Route::webdriver(
            M::POST,
            &format!("{ONE}/response-override"),
            c::set_overrides,
        ),
        Route::webdriver(M::GET, &format!("{ONE}/pin"), pin::get),
        Route::webdriver(M::POST, &format!("{ONE}/pin"), pin::set),
        Route::webdriver(M::POST, &format!("{ONE}/pin/retries"), pin::set_retries),
        Route::webdriver(M::POST, &format!("{ONE}/pin/state"), pin::set_state),
    ];
    routes.extend(webdriver.into_iter().flatten());
    use crate::lifecycle::api as l;
    let lifecycle = [
        Route::webdriver(M::POST, &format!("{ONE}/clone"), l::clone),
        Route::webdriver(M::GET, &format!("{ONE}/export"), l::export),
        Route::webdriver(M::POST, &format!("{ONE}/import"), l::import),
    ];
    routes.extend(lifecycle.into_iter().flatten());
    routes
}

/// The complete router: every route, the fallbacks, and the layers.
pub fn router(control: Shared, guard: Guard) -> Router {
    let cors = cors(guard.allowed_origins());
    let mut app: Router<Shared> = Router::new();
    for route in routes() {
        app = app.route(&route.matched, route.handler);
    }
    let mut app = app
        .fallback(unknown_command)
        .method_not_allowed_fallback(unknown_method)
        .layer(middleware::from_fn(time_limit))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(control);
    if let Some(cors) = cors {
        app = app.layer(cors);
    }
    app.layer(middleware::from_fn_with_state(
        Arc::new(guard),
        guard::middleware,
    ))
    .layer(middleware::from_fn(log_request))
}

/// CORS for the origins given with `--control-allow-origin`, if any.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let values: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(values))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION]),
    )
}

/// `GET /openapi.json`.
async fn openapi() -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        OPENAPI,
    )
        .into_response()
}

async fn unknown_command(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        ErrorCode::UnknownCommand,
        format!("no command {method} {}; see /openapi.json", uri.path()),
    )
}

async fn unknown_method(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        ErrorCode::UnknownMethod,
        format!("{} does not take {method}; see /openapi.json", uri.path()),
    )
}

/// Answers `timeout` (408) when a handler (reading its body included) takes
/// longer than [`HANDLER_TIMEOUT`]. Streams (events) are not limited: their
/// handler returns at once.
async fn time_limit(request: Request, next: Next) -> Response {
    match tokio::time::timeout(HANDLER_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(ErrorCode::Timeout, "the request took too long").into_response(),
    }
}

/// One log line per request: method, path and status (never bodies, which
/// may hold private keys, nor headers, which may hold the token).
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    tracing::info!(%method, %path, status = response.status().as_u16(), "control API request");
    response
}

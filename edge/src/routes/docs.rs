//! The self-describing API: the OpenAPI and AsyncAPI documents of this edge's catalog, and a
//! browsable page (Swagger UI, served from the binary: no CDN).

use std::sync::Arc;

use axum::{
    extract::State,
    http::header,
    response::{Html, IntoResponse, Response},
};
use contracts::headers::media;

use super::AppState;

const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Ackgate API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="api"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({ url: "/openapi.json", dom_id: "#api" });</script>
</body>
</html>
"##;

const BUNDLE: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui-bundle.js");
const STYLE: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui.css");

/// `GET /openapi.json`.
pub(super) async fn openapi(State(state): State<Arc<AppState>>) -> Response {
    json(&state.openapi)
}

/// `GET /asyncapi.json`.
pub(super) async fn asyncapi(State(state): State<Arc<AppState>>) -> Response {
    json(&state.asyncapi)
}

/// `GET /docs`: the OpenAPI document, browsable.
pub(super) async fn page() -> Html<&'static str> {
    Html(PAGE)
}

/// `GET /docs/swagger-ui-bundle.js`.
pub(super) async fn bundle() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript")], BUNDLE).into_response()
}

/// `GET /docs/swagger-ui.css`.
pub(super) async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css")], STYLE).into_response()
}

fn json(document: &bytes::Bytes) -> Response {
    ([(header::CONTENT_TYPE, media::JSON)], document.clone()).into_response()
}

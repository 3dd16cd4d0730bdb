//! The support console: a web page (`GET /console`) for support staff to find a command and
//! read its timeline, see recent failures and follow a command to its officer. Its sources
//! (`edge/assets/console/`, plain HTML, CSS and ES modules, no build step) are compiled into
//! the binary, so the page needs no CDN and no file on disk. It reads only the query API.

use axum::{
    Extension,
    extract::Path,
    http::{HeaderName, HeaderValue, header},
    response::{IntoResponse, Response},
};
use contracts::ErrorCode;

use crate::{context::RequestContext, problem::ProblemResponse};

/// One file of the console.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_str!(concat!("../../assets/console/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

const INDEX: Asset = asset!("index.html", "text/html; charset=utf-8");

const FILES: &[Asset] = &[
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("format.js", JS),
    asset!("live.js", JS),
    asset!("officer.js", JS),
    asset!("parts.js", JS),
    asset!("routes.js", JS),
    asset!("search.js", JS),
    asset!("steps.js", JS),
    asset!("timeline.js", JS),
];

/// Only the edge's own origin: no inline script or style, no other host, no framing. The
/// page is built from text nodes, so this is a second line against injected markup.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; object-src 'none'; base-uri 'none'; \
     frame-ancestors 'none'; form-action 'self'";

/// `GET /console`: the page.
pub(super) async fn page() -> Response {
    serve(&INDEX)
}

/// `GET /console/{file}`: its stylesheet and modules.
pub(super) async fn file(
    Path(name): Path<String>,
    Extension(ctx): Extension<RequestContext>,
) -> Response {
    match FILES.iter().find(|asset| asset.name == name) {
        Some(asset) => serve(asset),
        None => ProblemResponse(ctx.problem(ErrorCode::NotFound, "no such console file"))
            .into_response(),
    }
}

fn serve(asset: &Asset) -> Response {
    let headers = [
        (header::CONTENT_TYPE, asset.content_type),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        // Served from the binary: a new edge may bring new files under the same names.
        (header::CACHE_CONTROL, "no-cache"),
    ]
    .map(|(name, value): (HeaderName, &str)| (name, HeaderValue::from_static(value)));
    (headers, asset.body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `/console/<file>` the page names and every `./<file>` a module imports.
    fn references() -> Vec<String> {
        let mut names = Vec::new();
        for asset in std::iter::once(&INDEX).chain(FILES) {
            for marker in ["/console/", "from \"./"] {
                for (at, _) in asset.body.match_indices(marker) {
                    let rest = &asset.body[at + marker.len()..];
                    let end = rest.find(['"', '\'']).unwrap_or(rest.len());
                    names.push(rest[..end].to_owned());
                }
            }
        }
        names
    }

    #[test]
    fn every_file_the_page_and_its_modules_name_is_served() {
        let referenced = references();
        assert!(referenced.contains(&"app.js".to_owned()), "{referenced:?}");
        for name in &referenced {
            assert!(
                FILES.iter().any(|asset| asset.name == name),
                "{name} is referenced but not served"
            );
        }
    }

    #[test]
    fn no_file_loads_anything_from_another_origin() {
        for asset in std::iter::once(&INDEX).chain(FILES) {
            for marker in ["http://", "https://", "//cdn", "@import"] {
                assert!(
                    !asset.body.contains(marker),
                    "{} mentions {marker}",
                    asset.name
                );
            }
        }
    }
}

//! The API documents follow their specifications (checked against the specifications' own
//! JSON Schemas, offline), every example in them is valid against its schema, and the
//! copies in `docs/` are those of the shipped catalog (`ACKGATE_WRITE_DOCS=1` rewrites them).

use contracts::{Catalog, apidoc, schema::SchemaValidator};
use serde_json::Value;

const VERSION: &str = "test";

fn catalog() -> Catalog {
    Catalog::built_in().expect("the shipped catalog")
}

fn spec(file: &str) -> Value {
    let path = format!("{}/tests/specs/{file}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(&path).expect("spec schema")).expect("json")
}

fn assert_follows(document: &Value, spec_file: &str) {
    let validator =
        jsonschema::validator_for(&spec(spec_file)).expect("the spec's schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(document)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .take(10)
        .collect();
    assert!(errors.is_empty(), "{spec_file}: {errors:#?}");
}

/// The component schema a `$ref` of the document names, compiled with every component as a
/// possible reference target.
fn compile_ref(document: &Value, reference: &str) -> SchemaValidator {
    let name = reference
        .strip_prefix("#/components/schemas/")
        .expect("a component schema");
    let components = document["components"]["schemas"]
        .as_object()
        .expect("components");
    let others: Vec<Value> = components.values().cloned().collect();
    SchemaValidator::compile_with(name, &components[name], &others).expect("compiles")
}

fn assert_valid(document: &Value, schema: &Value, example: &Value, at: &str) {
    let reference = schema["$ref"]
        .as_str()
        .unwrap_or_else(|| panic!("{at}: a $ref"));
    let violations = compile_ref(document, reference).violations(example);
    assert!(violations.is_empty(), "{at}: {violations:?}");
}

#[test]
fn the_openapi_document_follows_openapi_3_1_and_its_examples_their_schemas() {
    let document = apidoc::openapi(&catalog(), VERSION);
    assert_follows(&document, "openapi-3.1.schema.json");
    let mut checked = 0;
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("item") {
            let contents = operation["requestBody"]["content"]
                .as_object()
                .into_iter()
                .flatten();
            let responses = operation["responses"].as_object().into_iter().flatten();
            let answers =
                responses.flat_map(|(_, r)| r["content"].as_object().into_iter().flatten());
            for (media_type, content) in contents.chain(answers) {
                if let Some(example) = content.get("example") {
                    let at = format!("{method} {path} {media_type}");
                    assert_valid(&document, &content["schema"], example, &at);
                    checked += 1;
                }
            }
        }
    }
    let problem =
        &document["components"]["responses"]["Problem"]["content"]["application/problem+json"];
    assert_valid(
        &document,
        &problem["schema"],
        &problem["example"],
        "the problem",
    );
    assert!(
        checked >= 9,
        "every command's example and the 202's: {checked}"
    );
}

#[test]
fn the_asyncapi_document_follows_asyncapi_3_0_and_its_examples_their_schemas() {
    let document = apidoc::asyncapi(&catalog(), VERSION);
    assert_follows(&document, "asyncapi-3.0.0.schema.json");
    let mut checked = 0;
    for (name, message) in document["components"]["messages"]
        .as_object()
        .expect("messages")
    {
        for example in message["examples"].as_array().into_iter().flatten() {
            assert_valid(&document, &message["payload"], &example["payload"], name);
            checked += 1;
        }
    }
    assert!(checked >= 8, "every command's example: {checked}");
    let channels = document["channels"].as_object().expect("channels");
    let addresses: Vec<&str> = channels
        .values()
        .filter_map(|c| c["address"].as_str())
        .collect();
    assert!(
        addresses.contains(&"ackgate.cmd.officer.suspend"),
        "{addresses:?}"
    );
    assert!(
        addresses.contains(&"ackgate.observation.events"),
        "{addresses:?}"
    );
}

#[test]
fn the_documents_in_docs_are_those_of_the_shipped_catalog() {
    let docs = format!("{}/../docs", env!("CARGO_MANIFEST_DIR"));
    for (file, document) in [
        ("openapi.json", apidoc::openapi(&catalog(), "shipped")),
        ("asyncapi.json", apidoc::asyncapi(&catalog(), "shipped")),
    ] {
        let path = format!("{docs}/{file}");
        let text = serde_json::to_string_pretty(&document).expect("json") + "\n";
        if std::env::var_os("ACKGATE_WRITE_DOCS").is_some() {
            std::fs::write(&path, &text).expect("writes");
        }
        let stored = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            stored == text,
            "docs/{file} is out of date: run ACKGATE_WRITE_DOCS=1 cargo test -p contracts --test apidoc"
        );
    }
}

#[test]
fn the_spec_checks_can_fail() {
    for (mut document, file, member) in [
        (
            apidoc::openapi(&catalog(), VERSION),
            "openapi-3.1.schema.json",
            "/paths",
        ),
        (
            apidoc::asyncapi(&catalog(), VERSION),
            "asyncapi-3.0.0.schema.json",
            "/channels",
        ),
    ] {
        *document.pointer_mut(member).expect("member") = Value::from(7);
        let validator = jsonschema::validator_for(&spec(file)).expect("compiles");
        assert!(
            !validator.is_valid(&document),
            "{file} let a broken document through"
        );
    }
}

//! Hand-tuned parts of the CRD schema.

use k8s_openapi::api::batch::v1::JobTemplateSpec;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::Value;

/// Schema of `spec.jobTemplate` (its own description comes from the field's doc comment): the full structural schema of a batch/v1 JobTemplateSpec, so the
/// API server rejects a malformed template at `kubectl apply` (a template the controller could not
/// read would otherwise only fail later), but without the nested descriptions: they are about 80%
/// of its size, would push the CRD past the 256 KiB that client-side `kubectl apply` can store in
/// its last-applied annotation, and `kubectl explain job.spec` already documents those fields.
pub fn job_template(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = JobTemplateSpec::json_schema(generator);
    strip_descriptions(schema.as_object_mut().map(|o| o as &mut _));
    // The operator supplies the runner container when there is none, so neither the pod
    // template nor its containers are required here.
    optional(&mut schema, "/properties/spec", "template");
    optional(
        &mut schema,
        "/properties/spec/properties/template/properties/spec",
        "containers",
    );
    schema
}

/// Removes `field` from the `required` list of the schema at `pointer`.
fn optional(schema: &mut Schema, pointer: &str, field: &str) {
    let Some(Value::Object(object)) = schema.pointer_mut(pointer) else {
        return;
    };
    if let Some(Value::Array(required)) = object.get_mut("required") {
        required.retain(|r| r != field);
        if required.is_empty() {
            object.remove("required");
        }
    }
}

/// Removes `description` from every schema object below `object`, keeping properties that happen
/// to be called "description".
fn strip_descriptions(object: Option<&mut serde_json::Map<String, Value>>) {
    let Some(object) = object else { return };
    object.remove("description");
    for (key, value) in object.iter_mut() {
        match (key.as_str(), value) {
            ("properties" | "patternProperties" | "definitions" | "$defs", Value::Object(map)) => {
                for schema in map.values_mut() {
                    strip_descriptions(schema.as_object_mut());
                }
            }
            (_, Value::Object(map)) => strip_descriptions(Some(map)),
            (_, Value::Array(items)) => {
                for item in items {
                    strip_descriptions(item.as_object_mut());
                }
            }
            _ => {}
        }
    }
}

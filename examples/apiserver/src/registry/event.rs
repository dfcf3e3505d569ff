//! Events: core/v1 `Event` (the storage shape) and events.k8s.io/v1 `Event`, which
//! cohabit one storage location and convert field by field.

use apistore::Object;
use serde_json::{json, Map, Value};

use super::{str_at, Column, Strategy};

/// core/v1 Event field ↔ events.k8s.io/v1 Event field.
const EVENT_FIELD_MAP: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

fn rename_fields<'a>(fields: &mut Map<String, Value>, pairs: impl Iterator<Item = (&'a str, &'a str)>) {
    for (from, to) in pairs {
        if let Some(value) = fields.remove(from) {
            fields.insert(to.to_owned(), value);
        }
    }
}

fn columns() -> Vec<Column> {
    vec![Column::string("Type", "Type of this event"), Column::string("Reason", "Why the event was generated")]
}

fn cells(object: &Object) -> Vec<Value> {
    vec![json!(str_at(object, &["type"])), json!(str_at(object, &["reason"]))]
}

/// The strategy of core/v1 events.
pub struct CoreEventStrategy;

impl Strategy for CoreEventStrategy {
    fn selectable_field(&self, field: &str) -> bool {
        field.starts_with("involvedObject.") || matches!(field, "reason" | "source" | "type" | "reportingComponent")
    }

    fn columns(&self) -> Vec<Column> {
        columns()
    }

    fn cells(&self, object: &Object) -> Vec<Value> {
        cells(object)
    }
}

/// The strategy of events.k8s.io/v1 events: stored in the core/v1 shape.
pub struct EventsV1Strategy;

impl Strategy for EventsV1Strategy {
    fn columns(&self) -> Vec<Column> {
        columns()
    }

    fn cells(&self, object: &Object) -> Vec<Value> {
        cells(object)
    }

    fn to_storage(&self, mut object: Object) -> Object {
        rename_fields(&mut object.fields, EVENT_FIELD_MAP.iter().map(|(core, v1)| (*v1, *core)));
        object.api_version = "v1".into();
        object
    }

    fn serves_stored_form(&self) -> bool {
        false
    }

    fn to_served(&self, mut object: Object) -> Object {
        rename_fields(&mut object.fields, EVENT_FIELD_MAP.iter().copied());
        object
    }
}

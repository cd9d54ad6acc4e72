//! Wire compatibility of the released packages: every field, enum value and RPC recorded in
//! `proto/compat/baseline.txt` must still exist with the same number, name, type and
//! cardinality (a removed field is allowed only if its number is reserved). Additions pass and
//! are listed; `BEAT_UPDATE_PROTO_BASELINE=1` records them (after the same check), which is how
//! a change to a `v1` package is released. The equivalent of `buf breaking` for this
//! repository, without a network or another tool.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use prost::Message as _;
use prost_types::{DescriptorProto, FileDescriptorSet, field_descriptor_proto};

/// key → description, e.g. `beat.consensus.v1.WatchBatchesRequest#2` →
/// `field certified bool optional`.
type Schema = BTreeMap<String, String>;

fn describe_message(
    prefix: &str,
    m: &DescriptorProto,
    schema: &mut Schema,
    reserved: &mut BTreeSet<String>,
) {
    let name = format!("{prefix}.{}", m.name());
    for f in &m.field {
        let label = match f.label() {
            field_descriptor_proto::Label::Repeated => "repeated",
            field_descriptor_proto::Label::Required => "required",
            field_descriptor_proto::Label::Optional if f.proto3_optional() => "explicit",
            field_descriptor_proto::Label::Optional => "optional",
        };
        let oneof = f
            .oneof_index
            .filter(|_| !f.proto3_optional())
            .and_then(|i| m.oneof_decl.get(i as usize))
            .map(|o| format!(" oneof {}", o.name()))
            .unwrap_or_default();
        schema.insert(
            format!("{name}#{}", f.number()),
            format!(
                "field {} {:?}{} {label}{oneof}",
                f.name(),
                f.r#type(),
                f.type_name
                    .as_deref()
                    .map(|t| format!(" {t}"))
                    .unwrap_or_default()
            ),
        );
    }
    for r in &m.reserved_range {
        for n in r.start()..r.end() {
            reserved.insert(format!("{name}#{n}"));
        }
    }
    for e in &m.enum_type {
        for v in &e.value {
            schema.insert(
                format!("{name}.{}={}", e.name(), v.number()),
                format!("value {}", v.name()),
            );
        }
    }
    for nested in &m.nested_type {
        describe_message(&name, nested, schema, reserved);
    }
}

fn current() -> (Schema, BTreeSet<String>) {
    let set = FileDescriptorSet::decode(beat_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut schema = Schema::new();
    let mut reserved = BTreeSet::new();
    for file in &set.file {
        let package = file.package();
        for m in &file.message_type {
            describe_message(package, m, &mut schema, &mut reserved);
        }
        for e in &file.enum_type {
            for v in &e.value {
                schema.insert(
                    format!("{package}.{}={}", e.name(), v.number()),
                    format!("value {}", v.name()),
                );
            }
        }
        for s in &file.service {
            for m in &s.method {
                schema.insert(
                    format!("{package}.{}/{}", s.name(), m.name()),
                    format!(
                        "rpc ({}{}) returns ({}{})",
                        if m.client_streaming() { "stream " } else { "" },
                        m.input_type(),
                        if m.server_streaming() { "stream " } else { "" },
                        m.output_type()
                    ),
                );
            }
        }
    }
    (schema, reserved)
}

fn parse(text: &str) -> Schema {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn render(schema: &Schema) -> String {
    let mut out = String::from(
        "# Released wire contract of every proto package (libs/beat-proto/tests/compat.rs).\n\
         # Regenerate after a compatible change: BEAT_UPDATE_PROTO_BASELINE=1 cargo test -p beat-proto --test compat\n",
    );
    for (k, v) in schema {
        out.push_str(&format!("{k} = {v}\n"));
    }
    out
}

/// The incompatibilities of `now` against `released`.
fn breaking(released: &Schema, now: &Schema, reserved: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    for (key, was) in released {
        match now.get(key) {
            Some(is) if is == was => {}
            Some(is) => out.push(format!("{key}: was `{was}`, is `{is}`")),
            None if reserved.contains(key) => {}
            None => out.push(format!(
                "{key}: `{was}` was removed (reserve its number instead)"
            )),
        }
    }
    out
}

#[test]
fn released_packages_stay_wire_compatible() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../proto/compat/baseline.txt"
    );
    let released = parse(&std::fs::read_to_string(path).unwrap_or_default());
    let (now, reserved) = current();
    let broken = breaking(&released, &now, &reserved);
    assert!(
        broken.is_empty(),
        "incompatible proto changes:\n  {}",
        broken.join("\n  ")
    );
    let added: Vec<&String> = now.keys().filter(|k| !released.contains_key(*k)).collect();
    if std::env::var_os("BEAT_UPDATE_PROTO_BASELINE").is_some() {
        std::fs::write(path, render(&now)).unwrap();
    } else if !added.is_empty() {
        eprintln!("additions not in the baseline yet: {added:?}");
    }
}

#[test]
fn the_check_catches_renumbering_retyping_and_removal() {
    let (now, reserved) = current();
    let key = "beat.consensus.v1.WatchBatchesRequest#1".to_owned();
    assert!(now.contains_key(&key), "{now:?}");
    let mut changed = now.clone();
    changed.insert(key.clone(), "field from_epoch TypeString optional".into());
    assert_eq!(breaking(&now, &changed, &reserved).len(), 1);
    let mut removed = now.clone();
    removed.remove(&key);
    assert_eq!(breaking(&now, &removed, &reserved).len(), 1);
    let mut renamed = now.clone();
    renamed.insert(
        "beat.common.v1.Variant=1".into(),
        "value VARIANT_HONEYBADGER".into(),
    );
    assert_eq!(breaking(&now, &renamed, &reserved).len(), 1);
    let mut added = now.clone();
    added.insert("beat.common.v1.Batch#99".into(), "field extra".into());
    assert!(breaking(&now, &added, &reserved).is_empty());
}

//! What changed between the shape a store was written with and the shape of the types
//! opening it, in lines a person can act on. Pure: compares two [`Shape`]s, nothing else.
//!
//! Containers are paired by serialized name. Within a struct or enum, members are
//! compared position by position, because that is how bincode encodes them: fields in
//! order, variants by index. So a variant inserted in the middle shows as every later
//! position changing, which is exactly the damage it would do to stored commands.

use super::shape::{
    Container, Field, Shape, Ty, Variant, VariantBody, render_container, render_ty, render_variant,
};

/// Why a changed variant position matters.
const VARIANT_NOTE: &str =
    "variants are encoded by position: inserting one moves the ones after it";
/// Why a changed field position matters.
const FIELD_NOTE: &str = "fields are encoded in order, without names";

/// The differences between `stored` and `wanted` as a codec that stores names sees
/// them (the evolvable codec): members are paired by name, not position, so reordering
/// is no change; what remains is a field or variant only one side has, or one whose
/// type differs. Empty when the shapes differ only in order.
pub fn differences_by_name(stored: &Shape, wanted: &Shape) -> Vec<String> {
    let mut lines = Vec::new();
    let stored_names = stored.reachable();
    let wanted_names = wanted.reachable();
    for name in stored_names.intersection(&wanted_names) {
        let (Some(a), Some(b)) = (stored.containers.get(*name), wanted.containers.get(*name))
        else {
            continue;
        };
        match (a, b) {
            (Container::Struct(a), Container::Struct(b)) => {
                for field in a {
                    match b.iter().find(|f| f.name == field.name) {
                        None => lines.push(format!(
                            "{name}: field {} ({}) is in the store but not here (stored values of it are dropped)",
                            field.name,
                            render_ty(&field.ty)
                        )),
                        Some(other) if other.ty != field.ty => lines.push(format!(
                            "{name}: field {} is {} in the store, {} here",
                            field.name,
                            render_ty(&field.ty),
                            render_ty(&other.ty)
                        )),
                        Some(_) => {}
                    }
                }
                for field in b.iter().filter(|f| !a.iter().any(|g| g.name == f.name)) {
                    lines.push(format!(
                        "{name}: field {} ({}) is new here (stored values have none: it needs #[serde(default)])",
                        field.name,
                        render_ty(&field.ty)
                    ));
                }
            }
            (Container::Enum(a), Container::Enum(b)) => {
                for variant in a {
                    match b.iter().find(|v| v.name == variant.name) {
                        None => lines.push(format!(
                            "{name}: variant {} is in the store but not here (stored values using it cannot be read)",
                            render_variant(variant)
                        )),
                        Some(other) if other.body != variant.body => lines.push(format!(
                            "{name}: variant {} in the store is {} here",
                            render_variant(variant),
                            render_variant(other)
                        )),
                        Some(_) => {}
                    }
                }
                for variant in b.iter().filter(|v| !a.iter().any(|w| w.name == v.name)) {
                    lines.push(format!(
                        "{name}: variant {} is new here",
                        render_variant(variant)
                    ));
                }
            }
            (a, b) if a != b => lines.push(format!(
                "{name}: {} in the store, {} here",
                render_container(name, a),
                render_container(name, b)
            )),
            _ => {}
        }
    }
    for name in stored_names.difference(&wanted_names) {
        lines.push(format!("{name}: in the store's types, not in these"));
    }
    for name in wanted_names.difference(&stored_names) {
        lines.push(format!("{name}: new in these types"));
    }
    if stored.state != wanted.state {
        lines.push(format!(
            "the state type is {} in the store, {} here",
            render_ty(&stored.state),
            render_ty(&wanted.state)
        ));
    }
    if stored.command != wanted.command {
        lines.push(format!(
            "the command type is {} in the store, {} here",
            render_ty(&stored.command),
            render_ty(&wanted.command)
        ));
    }
    lines
}

/// The differences between `stored` (the shape a store was written with) and `wanted`
/// (the shape of the types opening it), most specific first: member-level lines for
/// each container present in both (by container name), then containers only one side
/// reaches, then the two roots. Each line names the container and the field or variant
/// with its position. Empty exactly when the shapes are equal (for valid shapes: see
/// [`Shape::validate`]); only containers reachable from the roots are compared.
pub fn differences(stored: &Shape, wanted: &Shape) -> Vec<String> {
    let mut lines = Vec::new();
    let stored_names = stored.reachable();
    let wanted_names = wanted.reachable();
    for name in stored_names.intersection(&wanted_names) {
        if let (Some(a), Some(b)) = (stored.containers.get(*name), wanted.containers.get(*name)) {
            container_lines(&mut lines, name, a, b);
        }
    }
    for name in stored_names.difference(&wanted_names) {
        lines.push(format!(
            "{name}: removed (the store's types use it, these do not)"
        ));
    }
    for name in wanted_names.difference(&stored_names) {
        lines.push(format!(
            "{name}: new (these types use it, the store's do not)"
        ));
    }
    root_line(&mut lines, "state", &stored.state, &wanted.state);
    root_line(&mut lines, "command", &stored.command, &wanted.command);
    if lines.is_empty() && stored != wanted {
        // Only reachable for invalid shapes (unreachable or missing containers).
        lines.push(format!(
            "the shapes differ outside what their roots reach (fingerprint {:016x} in the store, {:016x} here)",
            stored.fingerprint(),
            wanted.fingerprint()
        ));
    }
    lines
}

fn root_line(lines: &mut Vec<String>, which: &str, stored: &Ty, wanted: &Ty) {
    if stored != wanted {
        lines.push(format!(
            "the {which} type is {} in the store, {} here",
            render_ty(stored),
            render_ty(wanted)
        ));
    }
}

/// The kind of a container with its article ("a struct", "an enum").
fn kind(container: &Container) -> &'static str {
    match container {
        Container::UnitStruct => "a unit struct",
        Container::NewTypeStruct(_) => "a newtype struct",
        Container::TupleStruct(_) => "a tuple struct",
        Container::Struct(_) => "a struct",
        Container::Enum(_) => "an enum",
    }
}

fn container_lines(lines: &mut Vec<String>, name: &str, stored: &Container, wanted: &Container) {
    if stored == wanted {
        return;
    }
    match (stored, wanted) {
        (Container::Struct(a), Container::Struct(b)) => field_lines(lines, name, a, b),
        (Container::Enum(a), Container::Enum(b)) => variant_lines(lines, name, a, b),
        (Container::TupleStruct(a), Container::TupleStruct(b)) => {
            element_lines(lines, name, a, b);
        }
        _ if kind(stored) == kind(wanted) => lines.push(format!(
            "{name}: is `{}` in the store, `{}` here",
            render_container(name, stored),
            render_container(name, wanted)
        )),
        _ => lines.push(format!(
            "{name}: is {} in the store (`{}`), {} here (`{}`)",
            kind(stored),
            render_container(name, stored),
            kind(wanted),
            render_container(name, wanted)
        )),
    }
}

/// Position-by-position comparison of fields; `at` names where they are (`Config`, or
/// `Command: variant 0 Put`).
fn field_lines(lines: &mut Vec<String>, at: &str, stored: &[Field], wanted: &[Field]) {
    for (i, (a, b)) in stored.iter().zip(wanted).enumerate() {
        if a.name == b.name {
            if a.ty != b.ty {
                lines.push(format!(
                    "{at}: field {i} {} is {} in the store, {} here",
                    a.name,
                    render_ty(&a.ty),
                    render_ty(&b.ty)
                ));
            }
        } else {
            let moved = match wanted.iter().position(|f| f.name == a.name) {
                Some(j) => format!("; {} is field {j} here", a.name),
                None => String::new(),
            };
            lines.push(format!(
                "{at}: field {i} is {}: {} in the store, {}: {} here{moved} ({FIELD_NOTE})",
                a.name,
                render_ty(&a.ty),
                b.name,
                render_ty(&b.ty)
            ));
        }
    }
    for (i, f) in stored.iter().enumerate().skip(wanted.len()) {
        lines.push(format!(
            "{at}: field {i} {} ({}) is in the store but not here",
            f.name,
            render_ty(&f.ty)
        ));
    }
    for (i, f) in wanted.iter().enumerate().skip(stored.len()) {
        lines.push(format!(
            "{at}: field {i} {} ({}) is new",
            f.name,
            render_ty(&f.ty)
        ));
    }
}

fn element_lines(lines: &mut Vec<String>, at: &str, stored: &[Ty], wanted: &[Ty]) {
    for (i, (a, b)) in stored.iter().zip(wanted).enumerate() {
        if a != b {
            lines.push(format!(
                "{at}: element {i} is {} in the store, {} here",
                render_ty(a),
                render_ty(b)
            ));
        }
    }
    for (i, t) in stored.iter().enumerate().skip(wanted.len()) {
        lines.push(format!(
            "{at}: element {i} ({}) is in the store but not here",
            render_ty(t)
        ));
    }
    for (i, t) in wanted.iter().enumerate().skip(stored.len()) {
        lines.push(format!("{at}: element {i} ({}) is new", render_ty(t)));
    }
}

fn variant_lines(lines: &mut Vec<String>, at: &str, stored: &[Variant], wanted: &[Variant]) {
    for (i, (a, b)) in stored.iter().zip(wanted).enumerate() {
        if a.name != b.name {
            let moved = match wanted.iter().position(|v| v.name == a.name) {
                Some(j) => format!("; {} is variant {j} here", a.name),
                None => String::new(),
            };
            lines.push(format!(
                "{at}: variant {i} is {} in the store, {} here{moved} ({VARIANT_NOTE})",
                render_variant(a),
                render_variant(b)
            ));
            continue;
        }
        let here = format!("{at}: variant {i} {}", a.name);
        match (&a.body, &b.body) {
            (VariantBody::Struct(fa), VariantBody::Struct(fb)) => {
                field_lines(lines, &here, fa, fb);
            }
            (VariantBody::Tuple(ta), VariantBody::Tuple(tb)) => {
                element_lines(lines, &here, ta, tb);
            }
            (x, y) if x != y => lines.push(format!(
                "{here} is {} in the store, {} here",
                render_variant(a),
                render_variant(b)
            )),
            _ => {}
        }
    }
    for (i, v) in stored.iter().enumerate().skip(wanted.len()) {
        lines.push(format!(
            "{at}: variant {i} {} is in the store but not here (stored commands or values using it cannot be read)",
            render_variant(v)
        ));
    }
    for (i, v) in wanted.iter().enumerate().skip(stored.len()) {
        lines.push(format!("{at}: variant {i} {} is new", render_variant(v)));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn by_name_ignores_order_and_names_what_is_missing_or_new() {
        let shape = |fields: &[(&str, Ty)], variants: &[&str]| Shape {
            state: Ty::Named("Config".into()),
            command: Ty::Named("Command".into()),
            containers: [
                (
                    "Config".to_owned(),
                    Container::Struct(
                        fields
                            .iter()
                            .map(|(name, ty)| Field {
                                name: (*name).into(),
                                ty: ty.clone(),
                            })
                            .collect(),
                    ),
                ),
                (
                    "Command".to_owned(),
                    Container::Enum(
                        variants
                            .iter()
                            .map(|name| Variant {
                                name: (*name).into(),
                                body: VariantBody::Unit,
                            })
                            .collect(),
                    ),
                ),
            ]
            .into_iter()
            .collect(),
        };
        let stored = shape(&[("a", Ty::U8), ("b", Ty::Str)], &["X", "Y"]);
        let reordered = shape(&[("b", Ty::Str), ("a", Ty::U8)], &["Y", "X"]);
        assert!(differences_by_name(&stored, &reordered).is_empty());
        assert!(!differences(&stored, &reordered).is_empty());
        let changed = shape(&[("a", Ty::U16), ("c", Ty::Bool)], &["X", "Z"]);
        let lines = differences_by_name(&stored, &changed).join("\n");
        for expected in [
            "field a is u8 in the store, u16 here",
            "field b (str) is in the store but not here",
            "field c (bool) is new here",
            "variant Y is in the store but not here",
            "variant Z is new here",
        ] {
            assert!(lines.contains(expected), "{expected:?} in:\n{lines}");
        }
        assert!(!lines.contains("position"), "{lines}");
    }

    use super::*;
    use std::collections::BTreeMap;

    fn field(name: &str, ty: Ty) -> Field {
        Field {
            name: name.into(),
            ty,
        }
    }

    fn newtype(name: &str, ty: Ty) -> Variant {
        Variant {
            name: name.into(),
            body: VariantBody::NewType(ty),
        }
    }

    fn shape(config: Vec<Field>, command: Vec<Variant>) -> Shape {
        let mut containers = BTreeMap::new();
        containers.insert("Config".to_owned(), Container::Struct(config));
        containers.insert("Command".to_owned(), Container::Enum(command));
        Shape {
            state: Ty::Named("Config".into()),
            command: Ty::Named("Command".into()),
            containers,
        }
    }

    fn readme() -> Shape {
        shape(
            vec![field("listen", Ty::Str), field("workers", Ty::U16)],
            vec![
                newtype("SetListen", Ty::Str),
                newtype("SetWorkers", Ty::U16),
            ],
        )
    }

    #[test]
    fn schema_equal_shapes_have_no_differences() {
        assert!(differences(&readme(), &readme()).is_empty());
    }

    #[test]
    fn schema_inserted_variant_names_every_moved_position() {
        let wanted = shape(
            vec![field("listen", Ty::Str), field("workers", Ty::U16)],
            vec![
                newtype("SetListen", Ty::Str),
                newtype("SetTimeoutSecs", Ty::U16),
                newtype("SetWorkers", Ty::U16),
            ],
        );
        assert_eq!(
            differences(&readme(), &wanted),
            [
                "Command: variant 1 is SetWorkers(u16) in the store, SetTimeoutSecs(u16) here; \
                 SetWorkers is variant 2 here (variants are encoded by position: inserting one moves the ones after it)",
                "Command: variant 2 SetWorkers(u16) is new",
            ]
        );
    }

    #[test]
    fn schema_field_added_and_retyped() {
        let wanted = shape(
            vec![
                field("listen", Ty::Str),
                field("workers", Ty::U32),
                field("timeout_secs", Ty::U16),
            ],
            vec![
                newtype("SetListen", Ty::Str),
                newtype("SetWorkers", Ty::U16),
            ],
        );
        assert_eq!(
            differences(&readme(), &wanted),
            [
                "Config: field 1 workers is u16 in the store, u32 here",
                "Config: field 2 timeout_secs (u16) is new",
            ]
        );
    }

    #[test]
    fn schema_renamed_state_type_reports_container_and_root() {
        let mut wanted = readme();
        let config = wanted.containers.remove("Config").unwrap();
        wanted.containers.insert("Settings".into(), config);
        wanted.state = Ty::Named("Settings".into());
        assert_eq!(
            differences(&readme(), &wanted),
            [
                "Config: removed (the store's types use it, these do not)",
                "Settings: new (these types use it, the store's do not)",
                "the state type is Config in the store, Settings here",
            ]
        );
    }
}

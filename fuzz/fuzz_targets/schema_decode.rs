//! The schema shape decoder on arbitrary bytes.
//!
//! Asserts: `Shape::decode` never panics; a shape it accepts re-encodes to exactly the
//! input (the encoding is canonical), decodes again to the same shape, and validates.
#![no_main]

use libfuzzer_sys::fuzz_target;
use walstate::schema::Shape;

fuzz_target!(|data: &[u8]| {
    let Ok(shape) = Shape::decode(data) else {
        return;
    };
    let again = shape.encode();
    assert_eq!(again, data, "a decoded shape does not re-encode to its bytes");
    assert_eq!(
        Shape::decode(&again).as_ref(),
        Ok(&shape),
        "re-encoded shape decodes differently"
    );
    assert!(shape.validate().is_ok(), "a decoded shape is not valid");
    let _ = shape.render();
    let _ = walstate::schema::differences(&shape, &shape);
});

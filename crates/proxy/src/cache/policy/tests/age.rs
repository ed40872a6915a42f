//! Tests of the `Age` field (`age.rs`).

use super::*;

// --- Age (RFC 9111 §5.1) ---

#[test]
fn age_field_is_the_first_member_and_digits_only() {
    let age = |lines: &[&str]| {
        let fields: Vec<(&str, &str)> = lines.iter().map(|l| ("age", *l)).collect();
        age_field(&headers(&fields))
    };
    assert_eq!(age(&[]), Ok(None));
    assert_eq!(age(&["10"]), Ok(Some(10)));
    assert_eq!(age(&[" 7 "]), Ok(Some(7)));
    assert_eq!(age(&["3, 9"]), Ok(Some(3)));
    assert_eq!(age(&["4", "8"]), Ok(Some(4)));
    assert_eq!(age(&["99999999999999999999"]), Ok(Some(1 << 31)));
    for bad in ["1a", "-1", "1.5", "", "+1", "0x10", "ten", "1 2", ", 5"] {
        assert_eq!(age(&[bad]), Err(InvalidAge), "{bad:?}");
    }
    assert_eq!(age(&["x", "5"]), Err(InvalidAge));
}

#[test]
fn a_response_with_an_invalid_age_is_not_stored() {
    for bad in ["1a", "-1", "1.5"] {
        assert_eq!(
            get_storable(&[], 200, &[("cache-control", "max-age=60"), ("age", bad)]),
            Err(NotStorable::InvalidAge),
            "{bad}"
        );
    }
    assert_eq!(
        get_storable(
            &[],
            200,
            &[("cache-control", "max-age=60"), ("age", "5, 6")]
        ),
        Ok(())
    );
}

//! The value this plugin generates: `length` letters and digits, drawn
//! without modulo bias from WASI random (the host's CSPRNG). Pure functions,
//! so `cargo test` checks them natively.

/// What a value may be made of.
pub const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/// The shortest and longest value the settings may ask for.
pub const LENGTHS: std::ops::RangeInclusive<usize> = 8..=1024;

/// A fresh value of `length` characters from [`ALPHABET`]. Bytes at or above
/// the largest multiple of the alphabet's size are thrown away, so every
/// character is equally likely.
pub fn random_value(length: usize) -> Result<String, getrandom::Error> {
    let limit = 256 - 256 % ALPHABET.len();
    let mut out = String::with_capacity(length);
    let mut buf = [0u8; 64];
    while out.len() < length {
        getrandom::fill(&mut buf)?;
        for &b in buf.iter().filter(|&&b| usize::from(b) < limit) {
            if out.len() == length {
                break;
            }
            out.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
        }
    }
    Ok(out)
}

/// Why `value` is not a value [`random_value`] could have made, if it is not.
pub fn check(value: &str, length: usize) -> Result<(), String> {
    let count = value.chars().count();
    if count != length {
        return Err(format!("{count} characters, wanted {length}"));
    }
    if !value.bytes().all(|b| ALPHABET.contains(&b)) {
        return Err("characters outside letters and digits".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_have_the_length_and_alphabet_asked_for() {
        for length in [*LENGTHS.start(), 24, 100, *LENGTHS.end()] {
            let value = random_value(length).unwrap();
            assert_eq!(check(&value, length), Ok(()), "{value}");
        }
    }

    #[test]
    fn two_values_differ() {
        assert_ne!(random_value(24).unwrap(), random_value(24).unwrap());
    }

    #[test]
    fn check_names_what_is_wrong() {
        assert_eq!(check("abc", 4), Err("3 characters, wanted 4".into()));
        assert_eq!(check("ab-d", 4), Err("characters outside letters and digits".into()));
    }
}

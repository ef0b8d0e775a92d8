//! Check digits, in one place: the Luhn check of card numbers and the ISO 7064 mod 97-10 check
//! of IBANs. The `credit_card` and `iban` transforms make valid ones with these, and the
//! personal-data detectors recognise real ones with them.
//!
//! Pure functions over text; nothing here allocates on the way or panics on any input.

/// The digit that makes `payload` followed by it pass the Luhn check. `payload` holds digit
/// values (0 to 9), most significant first.
pub fn luhn_check_digit(payload: &[u8]) -> u8 {
    let sum: u32 = payload
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            // The check digit will sit at position 0 from the right: every other digit from
            // the one before it is doubled.
            if i % 2 == 0 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// True when `digits` is at least one ASCII digit, nothing else, and passes the Luhn (mod 10)
/// check with its last digit as the check digit.
pub fn luhn_valid(digits: &str) -> bool {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

/// ISO 7064 mod 97-10 of the characters of `parts`, read one after the other as one number in
/// which a letter counts as the two digits 10 to 35 (`A`/`a` = 10 … `Z`/`z` = 35). None when
/// a character is neither an ASCII letter nor a digit.
pub fn mod97(parts: &[&str]) -> Option<u32> {
    let mut rem: u32 = 0;
    for c in parts.iter().flat_map(|p| p.chars()) {
        let v = c.to_digit(36)?;
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    Some(rem)
}

/// The two check digits of the IBAN of `country` (two letters) and `bban` (letters and
/// digits): 98 − mod97(bban ‖ country ‖ "00"), from 2 to 98. None when `country` or `bban`
/// holds another character.
pub fn iban_check_digits(country: &str, bban: &str) -> Option<u32> {
    mod97(&[bban, country, "00"]).map(|rem| 98 - rem)
}

/// True when `compact` (an IBAN in its electronic form: no spaces) has a valid checksum: at
/// least 5 characters, ASCII letters and digits only, and mod97(bban ‖ country ‖ check) = 1.
/// The length a country's IBANs must have is the caller's business.
pub fn iban_valid(compact: &str) -> bool {
    if compact.len() < 5 || !compact.is_ascii() {
        return false;
    }
    let (head, bban) = compact.split_at(4);
    mod97(&[bban, head]) == Some(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_known_values() {
        assert!(luhn_valid("4111111111111111"));
        assert!(luhn_valid("378282246310005"));
        assert!(luhn_valid("79927398713"));
        assert!(!luhn_valid("79927398710"));
        assert!(!luhn_valid("4111111111111112"));
        assert!(!luhn_valid(""));
        assert!(!luhn_valid("41x1"));
        assert!(!luhn_valid("12a4"));
    }

    #[test]
    fn luhn_check_digit_completes_a_valid_number() {
        for payload in ["411111111111111", "37828224631000", "7992739871", "0", ""] {
            let digits: Vec<u8> = payload.bytes().map(|b| b - b'0').collect();
            let full = format!("{payload}{}", luhn_check_digit(&digits));
            assert!(luhn_valid(&full), "{full}");
        }
        assert_eq!(luhn_check_digit(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1]), 3);
    }

    #[test]
    fn iban_known_values() {
        assert!(iban_valid("GB82WEST12345698765432"));
        assert!(iban_valid("DE89370400440532013000"));
        assert!(!iban_valid("GB82WEST12345698765433"));
        assert!(
            !iban_valid("GB82 WEST 1234 5698 7654 32"),
            "spaces are not compact"
        );
        assert!(!iban_valid("GB82"));
        assert!(!iban_valid("GB82WEST1234569876543é"));
        assert_eq!(iban_check_digits("DE", "370400440532013000"), Some(89));
        assert_eq!(iban_check_digits("GB", "WEST12345698765432"), Some(82));
        assert_eq!(iban_check_digits("GB", "WEST-1"), None);
        assert_eq!(mod97(&["a", "A"]), mod97(&["1010"]));
    }
}

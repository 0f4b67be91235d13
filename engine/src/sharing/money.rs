//! Money as exact decimals: an [`Amount`] is a whole number of 10^-12 of a
//! currency unit, so a price of `0.001` per token, a million tokens of it and
//! a platform fee of 15% of that are all exact, and fee + provider net add
//! up to the gross to the last digit. Never a float: JSON numbers are parsed
//! from their text ([`Amount::parse`]), not through `f64`.
//!
//! [`Currency`] is an ISO 4217 code, checked against the active list.
use serde::{Deserialize, Serialize};
use std::fmt;

/// Digits after the decimal point an amount keeps.
pub const SCALE: u32 = 12;
const ONE: i128 = 1_000_000_000_000;

/// An exact decimal amount of money (or a price per unit), in 10^-12 of
/// its currency's unit.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Amount(i128);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("{0:?} is not a decimal number (e.g. 0.001)")]
    NotDecimal(String),
    #[error("{0:?} has more than 12 digits after the decimal point")]
    TooPrecise(String),
    #[error("{0:?} is too large")]
    TooLarge(String),
    #[error("{0:?} is not an ISO 4217 currency code (e.g. USD, EUR)")]
    UnknownCurrency(String),
}

impl Amount {
    pub const ZERO: Amount = Amount(0);

    /// The amount in 10^-12 of the unit.
    pub fn from_picos(picos: i128) -> Amount {
        Amount(picos)
    }

    pub fn picos(self) -> i128 {
        self.0
    }

    /// Parse a decimal as JSON writes numbers (`12`, `-0.5`, `0.001`,
    /// `1e-3`, `2.5E2`), exactly. At most 12 digits after the point once
    /// the exponent is applied.
    pub fn parse(text: &str) -> Result<Amount, MoneyError> {
        let shown = || crate::excerpt::short(text);
        let not_decimal = || MoneyError::NotDecimal(shown());
        let s = text.trim();
        let (negative, s) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (mantissa, exponent) = match s.find(['e', 'E']) {
            Some(i) => {
                let e: i32 = s[i + 1..].parse().map_err(|_| not_decimal())?;
                (&s[..i], e)
            }
            None => (s, 0),
        };
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if whole.is_empty() && fraction.is_empty()
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
            || (mantissa.contains('.') && fraction.is_empty())
        {
            return Err(not_decimal());
        }
        // digits × 10^(exponent - fraction digits), in units of 10^-SCALE.
        let digits = format!("{whole}{fraction}");
        let digits = digits.trim_start_matches('0');
        let shift = exponent
            .checked_sub(i32::try_from(fraction.len()).map_err(|_| not_decimal())?)
            .and_then(|e| e.checked_add(SCALE as i32))
            .ok_or_else(not_decimal)?;
        let mut value: i128 = 0;
        for b in digits.bytes() {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(i128::from(b - b'0')))
                .ok_or_else(|| MoneyError::TooLarge(shown()))?;
        }
        let value = if shift >= 0 {
            10i128
                .checked_pow(shift as u32)
                .and_then(|p| value.checked_mul(p))
                .ok_or_else(|| MoneyError::TooLarge(shown()))?
        } else {
            let divisor = 10i128.checked_pow(shift.unsigned_abs());
            match divisor {
                Some(d) if value % d == 0 => value / d,
                _ if value == 0 => 0,
                _ => return Err(MoneyError::TooPrecise(shown())),
            }
        };
        Ok(Amount(if negative { -value } else { value }))
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    /// This price times `units`.
    pub fn times(self, units: u64) -> Option<Amount> {
        self.0.checked_mul(i128::from(units)).map(Amount)
    }

    /// `basis_points` / 10,000 of this amount, rounded down to 10^-12:
    /// the platform's fee, so that the provider's net (the rest) and the
    /// fee add up to the gross exactly.
    pub fn share(self, basis_points: u32) -> Option<Amount> {
        self.0
            .checked_mul(i128::from(basis_points))
            .map(|v| Amount(v.div_euclid(10_000)))
    }
}

impl fmt::Display for Amount {
    /// The shortest exact decimal: `0.001`, `12`, `-1.5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let (whole, fraction) = (abs / ONE as u128, abs % ONE as u128);
        if fraction == 0 {
            return write!(f, "{sign}{whole}");
        }
        let digits = format!("{fraction:012}");
        write!(f, "{sign}{whole}.{}", digits.trim_end_matches('0'))
    }
}

/// An [`Amount`] read from JSON exactly: a number (`0.001`) from its text,
/// never through `f64`, or a string holding one (`"0.001"`). Needs
/// serde_json's own deserializer underneath (wrappers that forward to it,
/// as serde_path_to_error does, are fine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonAmount(pub Amount);

impl<'de> Deserialize<'de> for JsonAmount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw: Box<serde_json::value::RawValue> = Deserialize::deserialize(d)?;
        let text = raw.get().trim();
        let text = match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
            Some(inner) => inner,
            None if text.starts_with(['-', '+'])
                || text.starts_with(|c: char| c.is_ascii_digit()) =>
            {
                text
            }
            None => {
                return Err(serde::de::Error::custom(
                    "expected a decimal number (e.g. 0.001)",
                ));
            }
        };
        Amount::parse(text)
            .map(JsonAmount)
            .map_err(serde::de::Error::custom)
    }
}

/// An ISO 4217 currency code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Currency([u8; 3]);

/// The active ISO 4217 codes (funds and precious metals excluded).
const CODES: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND \
BOB BRL BSD BTN BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB \
EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY \
KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR \
MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF \
SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS \
UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG";

impl Currency {
    /// A code in any case (`usd` is USD); unknown codes are refused.
    pub fn parse(code: &str) -> Result<Currency, MoneyError> {
        let upper = code.trim().to_ascii_uppercase();
        match <[u8; 3]>::try_from(upper.as_bytes()) {
            Ok(bytes) if CODES.split_whitespace().any(|c| c == upper) => Ok(Currency(bytes)),
            _ => Err(MoneyError::UnknownCurrency(crate::excerpt::short(code))),
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Amount {
        Amount::parse(s).unwrap()
    }

    #[test]
    fn decimals_parse_exactly_and_print_back() {
        for (text, picos, shown) in [
            ("0.001", 1_000_000_000, "0.001"),
            ("12", 12 * ONE, "12"),
            ("-1.5", -3 * ONE / 2, "-1.5"),
            ("1e-3", 1_000_000_000, "0.001"),
            ("2.5E2", 250 * ONE, "250"),
            ("0.000000000001", 1, "0.000000000001"),
            ("0.10", ONE / 10, "0.1"),
            ("000.5", ONE / 2, "0.5"),
            ("0", 0, "0"),
            ("1.2300e1", 123 * ONE / 10, "12.3"),
            ("0.0e5", 0, "0"),
        ] {
            let v = a(text);
            assert_eq!(v.picos(), picos, "{text}");
            assert_eq!(v.to_string(), shown, "{text}");
            assert_eq!(a(shown), v, "{shown} reads back");
        }
    }

    #[test]
    fn what_is_not_an_exact_decimal_is_refused_by_name() {
        for bad in [
            "", ".", "1.", ".5x", "abc", "1e", "--1", "1.2.3", "0x10", "1 000", "NaN",
        ] {
            assert!(
                matches!(Amount::parse(bad), Err(MoneyError::NotDecimal(_))),
                "{bad:?}: {:?}",
                Amount::parse(bad)
            );
        }
        assert!(matches!(
            Amount::parse("0.0000000000001"),
            Err(MoneyError::TooPrecise(_))
        ));
        assert!(matches!(
            Amount::parse("1e40"),
            Err(MoneyError::TooLarge(_))
        ));
        let long = format!("1.{}", "5".repeat(500));
        let err = Amount::parse(&long).unwrap_err().to_string();
        assert!(err.len() < 120, "{err}");
    }

    #[test]
    fn fee_and_net_add_up_to_the_gross_to_the_last_digit() {
        let price = a("0.001");
        let gross = price.times(1_234_567).unwrap();
        assert_eq!(gross.to_string(), "1234.567");
        for bp in [0, 1, 1_500, 3_333, 10_000] {
            let fee = gross.share(bp).unwrap();
            let net = gross.checked_sub(fee).unwrap();
            assert_eq!(fee.checked_add(net), Some(gross), "{bp} bp");
        }
        assert_eq!(gross.share(1_500).unwrap().to_string(), "185.18505");
        // A third of a pico-unit rounds down in the fee, up in the net.
        let odd = Amount::from_picos(10);
        assert_eq!(odd.share(3_333).unwrap().picos(), 3);
    }

    #[test]
    fn json_numbers_are_read_from_their_text() {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Pricing {
            usage_price: JsonAmount,
        }
        for (body, want) in [
            (r#"{"usagePrice": 0.001}"#, "0.001"),
            (r#"{"usagePrice": 0.1}"#, "0.1"),
            (r#"{"usagePrice": 1e-7}"#, "0.0000001"),
            (r#"{"usagePrice": "0.30"}"#, "0.3"),
        ] {
            let mut de = serde_json::Deserializer::from_str(body);
            let p: Pricing = serde_path_to_error::deserialize(&mut de).unwrap();
            assert_eq!(p.usage_price.0.to_string(), want, "{body}");
        }
        // 0.1 + 0.2 is 0.3 here, as money must be.
        let sum = Amount::parse("0.1")
            .unwrap()
            .checked_add(Amount::parse("0.2").unwrap())
            .unwrap();
        assert_eq!(sum, Amount::parse("0.3").unwrap());
        for bad in [
            r#"{"usagePrice": true}"#,
            r#"{"usagePrice": "a lot"}"#,
            r#"{"usagePrice": 1e-13}"#,
        ] {
            let mut de = serde_json::Deserializer::from_str(bad);
            let r: Result<Pricing, _> = serde_path_to_error::deserialize(&mut de);
            let e = r.err().unwrap_or_else(|| panic!("{bad} accepted"));
            assert_eq!(e.path().to_string(), "usagePrice", "{bad}");
        }
    }

    #[test]
    fn currencies_are_iso_4217_codes() {
        assert_eq!(Currency::parse("usd").unwrap().to_string(), "USD");
        assert_eq!(Currency::parse("EUR").unwrap().as_str(), "EUR");
        for bad in ["", "US", "USDD", "XYZ", "€"] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
    }
}

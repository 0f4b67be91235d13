//! Colours as `#rrggbb` and their contrast by WCAG 2.x: the relative
//! luminance of each colour (sRGB, linearised), and (L1 + 0.05) / (L2 +
//! 0.05) with L1 the lighter. AA asks for 4.5 for normal text.
use serde::{Deserialize, Serialize};

/// WCAG 2.x level AA for normal-size text.
pub const AA_NORMAL_TEXT: f64 = 4.5;

/// A colour written `#rrggbb` (stored lowercase).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rgb(pub [u8; 3]);

impl Rgb {
    pub fn parse(raw: &str) -> Result<Rgb, String> {
        let hex = raw
            .strip_prefix('#')
            .filter(|h| h.len() == 6 && h.chars().all(|c| c.is_ascii_hexdigit()))
            .ok_or_else(|| {
                format!(
                    "{:?} is not a colour written #rrggbb (six hex digits)",
                    crate::excerpt::short(raw)
                )
            })?;
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).expect("checked hex");
        Ok(Rgb([byte(0), byte(2), byte(4)]))
    }

    pub fn hex(self) -> String {
        let [r, g, b] = self.0;
        format!("#{r:02x}{g:02x}{b:02x}")
    }

    /// Relative luminance, 0 (black) to 1 (white).
    pub fn luminance(self) -> f64 {
        let channel = |c: u8| {
            let c = f64::from(c) / 255.0;
            if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        let [r, g, b] = self.0;
        0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)
    }
}

/// The contrast ratio of two colours, 1 to 21.
pub fn ratio(a: Rgb, b: Rgb) -> f64 {
    let (la, lb) = (a.luminance(), b.luminance());
    let (hi, lo) = if la >= lb { (la, lb) } else { (lb, la) };
    (hi + 0.05) / (lo + 0.05)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rgb(s: &str) -> Rgb {
        Rgb::parse(s).unwrap()
    }

    #[test]
    fn ratios_match_the_wcag_reference_values() {
        assert!((ratio(rgb("#000000"), rgb("#ffffff")) - 21.0).abs() < 1e-9);
        assert!((ratio(rgb("#ffffff"), rgb("#ffffff")) - 1.0).abs() < 1e-9);
        // #767676 on white is the classic just-passing grey (4.54:1),
        // #777777 just fails (4.48:1).
        assert!(ratio(rgb("#767676"), rgb("#ffffff")) >= AA_NORMAL_TEXT);
        assert!(ratio(rgb("#777777"), rgb("#ffffff")) < AA_NORMAL_TEXT);
        assert_eq!(
            ratio(rgb("#1f4e8c"), rgb("#ffffff")),
            ratio(rgb("#ffffff"), rgb("#1f4e8c"))
        );
    }

    #[test]
    fn only_six_digit_hex_colours_parse() {
        assert_eq!(rgb("#1F4e8C").hex(), "#1f4e8c");
        for bad in ["1f4e8c", "#fff", "#1f4e8g", "#1f4e8c0", "red", ""] {
            assert!(Rgb::parse(bad).is_err(), "{bad}");
        }
    }
}

//! A pre-pass over request CBOR, before ctap-types deserializes it.
//!
//! [`well_formed`] runs on every CTAP2 request body before any command sees
//! it: the body must be one well-formed, definite-length CBOR item whose
//! arrays, maps and tags nest at most [`MAX_DEPTH`] deep. cbor-smol (inside
//! ctap-types) skips unknown values recursively, one stack frame per array,
//! map or tag level and without a depth limit, so an unchecked request of
//! 7,600 nested tags would overflow the stack; after this check its recursion
//! is at most [`MAX_DEPTH`] deep. This module's own walk is recursive too,
//! and bounded the same way: every array, map and tag counts one level.
//!
//! Per command, [`make_credential`] and [`get_assertion`] check that the
//! parameters the authenticator uses have the right CBOR types, so a wrong
//! type gives `CTAP2_ERR_CBOR_UNEXPECTED_TYPE` (ctap-types would report most
//! of them as `INVALID_CBOR`). Missing required parameters are left to the
//! deserializer (`MISSING_PARAMETER`).

use ctap_types::ctap2::Error;

/// The deepest nesting of arrays, maps and tags accepted (the top-level map is
/// depth 1; a tag counts as a level of its own).
pub const MAX_DEPTH: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Bytes,
    Text,
    Int,
    UInt,
    Bool,
    Map,
    TextArray,
    Rp,
    User,
    ParamList,
    DescriptorList,
    Options,
}

/// authenticatorMakeCredential parameters.
const MAKE_CREDENTIAL: &[(u64, Expect)] = &[
    (1, Expect::Bytes),
    (2, Expect::Rp),
    (3, Expect::User),
    (4, Expect::ParamList),
    (5, Expect::DescriptorList),
    (6, Expect::Map),
    (7, Expect::Options),
    (8, Expect::Bytes),
    (9, Expect::UInt),
    (10, Expect::UInt),
    (11, Expect::TextArray),
];

/// authenticatorGetAssertion parameters.
const GET_ASSERTION: &[(u64, Expect)] = &[
    (1, Expect::Text),
    (2, Expect::Bytes),
    (3, Expect::DescriptorList),
    (4, Expect::Map),
    (5, Expect::Options),
    (6, Expect::Bytes),
    (7, Expect::UInt),
    (8, Expect::UInt),
    (9, Expect::TextArray),
];

/// Checks that `body` is exactly one well-formed CBOR item: definite lengths,
/// no reserved additional-information values, every length inside the body,
/// arrays, maps and tags nested at most [`MAX_DEPTH`] deep, and nothing after
/// it. Any failure is `INVALID_CBOR`.
pub fn well_formed(body: &[u8]) -> Result<(), Error> {
    let mut c = Cursor { data: body, pos: 0 };
    c.skip(1)?;
    if c.pos != body.len() {
        return Err(Error::InvalidCbor);
    }
    Ok(())
}

/// Checks an authenticatorMakeCredential body (the CBOR after the command byte).
pub fn make_credential(body: &[u8]) -> Result<(), Error> {
    top_level(body, MAKE_CREDENTIAL)
}

/// Checks an authenticatorGetAssertion body.
pub fn get_assertion(body: &[u8]) -> Result<(), Error> {
    top_level(body, GET_ASSERTION)
}

fn top_level(body: &[u8], schema: &[(u64, Expect)]) -> Result<(), Error> {
    let mut c = Cursor { data: body, pos: 0 };
    let (major, len) = c.head()?;
    if major != MAP {
        return Err(Error::CborUnexpectedType);
    }
    let mut seen: u64 = 0;
    for _ in 0..len {
        let (kmajor, key) = c.head()?;
        if kmajor != UINT {
            // Parameter keys are unsigned integers; skip anything else.
            c.skip_content(kmajor, key, 2)?;
            c.skip(2)?;
            continue;
        }
        if key < 64 {
            if seen & (1 << key) != 0 {
                return Err(Error::InvalidCbor);
            }
            seen |= 1 << key;
        }
        match schema.iter().find(|(k, _)| *k == key) {
            Some(&(_, expect)) => c.check(expect, 2)?,
            None => c.skip(2)?,
        }
    }
    if c.pos != body.len() {
        return Err(Error::InvalidCbor);
    }
    Ok(())
}

/// Walks a request body that must be one well-formed, definite-length CBOR map
/// (nesting bounded as above) and returns the encoded bytes of the value under
/// the unsigned-integer key `key`, exactly as received.
///
/// Commands whose pinUvAuthParam covers a sub-structure of the request
/// (credentialManagement's and authenticatorConfig's `subCommandParams`) MAC
/// these raw bytes, never a re-encoding.
pub fn raw_value(body: &[u8], key: u64) -> Result<Option<&[u8]>, Error> {
    let mut c = Cursor { data: body, pos: 0 };
    let (major, len) = c.head()?;
    if major != MAP {
        return Err(Error::CborUnexpectedType);
    }
    let mut found = None;
    for _ in 0..len {
        let (kmajor, karg) = c.head()?;
        if kmajor != UINT {
            c.skip_content(kmajor, karg, 2)?;
            c.skip(2)?;
            continue;
        }
        let start = c.pos;
        c.skip(2)?;
        if karg == key {
            if found.is_some() {
                return Err(Error::InvalidCbor);
            }
            found = body.get(start..c.pos);
        }
    }
    if c.pos != body.len() {
        return Err(Error::InvalidCbor);
    }
    Ok(found)
}

/// Like [`raw_value`], for a value that must be an unsigned integer.
pub fn uint_value(body: &[u8], key: u64) -> Result<Option<u64>, Error> {
    let Some(raw) = raw_value(body, key)? else {
        return Ok(None);
    };
    let mut c = Cursor { data: raw, pos: 0 };
    match c.head()? {
        (UINT, value) => Ok(Some(value)),
        _ => Err(Error::CborUnexpectedType),
    }
}

/// Like [`raw_value`], for a value that must be a byte string (its content).
pub fn bytes_value(body: &[u8], key: u64) -> Result<Option<&[u8]>, Error> {
    string_value(body, key, BYTES)
}

/// Like [`raw_value`], for a value that must be a text string (its UTF-8).
pub fn text_value(body: &[u8], key: u64) -> Result<Option<&str>, Error> {
    string_value(body, key, TEXT)?
        .map(|b| core::str::from_utf8(b).map_err(|_| Error::InvalidCbor))
        .transpose()
}

/// Like [`raw_value`], for a value that must be a boolean.
pub fn bool_value(body: &[u8], key: u64) -> Result<Option<bool>, Error> {
    let Some(raw) = raw_value(body, key)? else {
        return Ok(None);
    };
    match raw {
        [0xF4] => Ok(Some(false)),
        [0xF5] => Ok(Some(true)),
        _ => Err(Error::CborUnexpectedType),
    }
}

fn string_value(body: &[u8], key: u64, major: u8) -> Result<Option<&[u8]>, Error> {
    let Some(raw) = raw_value(body, key)? else {
        return Ok(None);
    };
    let mut c = Cursor { data: raw, pos: 0 };
    match c.head()? {
        (m, len) if m == major => {
            let len = usize::try_from(len).map_err(|_| Error::InvalidCbor)?;
            let end = c.pos.checked_add(len).ok_or(Error::InvalidCbor)?;
            raw.get(c.pos..end).map(Some).ok_or(Error::InvalidCbor)
        }
        _ => Err(Error::CborUnexpectedType),
    }
}

/// The number of elements of an encoded array (`None` for anything else).
pub fn array_len(value: &[u8]) -> Option<u64> {
    let mut c = Cursor {
        data: value,
        pos: 0,
    };
    match c.head() {
        Ok((ARRAY, len)) => Some(len),
        _ => None,
    }
}

const UINT: u8 = 0;
const NINT: u8 = 1;
const BYTES: u8 = 2;
const TEXT: u8 = 3;
const ARRAY: u8 = 4;
const MAP: u8 = 5;
const TAG: u8 = 6;
const SIMPLE: u8 = 7;

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn byte(&mut self) -> Result<u8, Error> {
        let b = *self.data.get(self.pos).ok_or(Error::InvalidCbor)?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: u64) -> Result<&[u8], Error> {
        let n = usize::try_from(n).map_err(|_| Error::InvalidCbor)?;
        let end = self.pos.checked_add(n).ok_or(Error::InvalidCbor)?;
        let out = self.data.get(self.pos..end).ok_or(Error::InvalidCbor)?;
        self.pos = end;
        Ok(out)
    }

    /// Reads an item head: (major type, argument). Indefinite lengths and
    /// reserved additional-information values are rejected.
    fn head(&mut self) -> Result<(u8, u64), Error> {
        let initial = self.byte()?;
        let major = initial >> 5;
        let info = initial & 0x1F;
        let arg = match info {
            0..=23 => u64::from(info),
            24..=27 => {
                let bytes = self.take(1 << (info - 24))?;
                bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
            }
            _ => return Err(Error::InvalidCbor),
        };
        Ok((major, arg))
    }

    /// Skips the rest of an item at nesting `depth` whose head was already
    /// read. Arrays, maps and tags deeper than [`MAX_DEPTH`] are refused, so
    /// the recursion is at most [`MAX_DEPTH`] calls deep.
    fn skip_content(&mut self, major: u8, arg: u64, depth: usize) -> Result<(), Error> {
        match major {
            UINT | NINT | SIMPLE => Ok(()),
            BYTES | TEXT => self.take(arg).map(|_| ()),
            ARRAY | MAP | TAG if depth > MAX_DEPTH => Err(Error::InvalidCbor),
            ARRAY | MAP => {
                let items = if major == MAP { 2 } else { 1 };
                // Every item takes at least one byte: a huge count runs out of
                // data (an error) after at most `data.len()` rounds.
                for _ in 0..arg {
                    for _ in 0..items {
                        self.skip(depth + 1)?;
                    }
                }
                Ok(())
            }
            TAG => self.skip(depth + 1),
            _ => Err(Error::InvalidCbor),
        }
    }

    /// Skips one whole item at nesting `depth`.
    fn skip(&mut self, depth: usize) -> Result<(), Error> {
        let (major, arg) = self.head()?;
        self.skip_content(major, arg, depth)
    }

    fn check(&mut self, expect: Expect, depth: usize) -> Result<(), Error> {
        let (major, arg) = self.head()?;
        let ok = match expect {
            Expect::Bytes => major == BYTES,
            Expect::Text => major == TEXT,
            Expect::Int => major == UINT || major == NINT,
            Expect::UInt => major == UINT,
            Expect::Bool => major == SIMPLE && (arg == 20 || arg == 21),
            Expect::Map | Expect::Rp | Expect::User | Expect::Options => major == MAP,
            Expect::TextArray | Expect::ParamList | Expect::DescriptorList => major == ARRAY,
        };
        if !ok {
            return Err(Error::CborUnexpectedType);
        }
        if depth > MAX_DEPTH && (major == MAP || major == ARRAY) {
            return Err(Error::InvalidCbor);
        }
        match expect {
            Expect::Rp => self.fields(arg, depth, &[("id", Expect::Text), ("name", Expect::Text)]),
            Expect::User => self.fields(
                arg,
                depth,
                &[
                    ("id", Expect::Bytes),
                    ("name", Expect::Text),
                    ("displayName", Expect::Text),
                    ("icon", Expect::Text),
                ],
            ),
            Expect::Options => self.fields(
                arg,
                depth,
                &[
                    ("rk", Expect::Bool),
                    ("up", Expect::Bool),
                    ("uv", Expect::Bool),
                ],
            ),
            Expect::ParamList => self.elements(arg, depth, |c| {
                c.check_map_with(depth + 1, &[("alg", Expect::Int), ("type", Expect::Text)])
            }),
            Expect::DescriptorList => self.elements(arg, depth, |c| {
                c.check_map_with(depth + 1, &[("id", Expect::Bytes), ("type", Expect::Text)])
            }),
            Expect::TextArray => self.elements(arg, depth, |c| c.check(Expect::Text, depth + 1)),
            _ => self.skip_content(major, arg, depth),
        }
    }

    fn elements(
        &mut self,
        count: u64,
        _depth: usize,
        mut each: impl FnMut(&mut Self) -> Result<(), Error>,
    ) -> Result<(), Error> {
        for _ in 0..count {
            each(self)?;
        }
        Ok(())
    }

    fn check_map_with(&mut self, depth: usize, fields: &[(&str, Expect)]) -> Result<(), Error> {
        let (major, arg) = self.head()?;
        if major != MAP {
            return Err(Error::CborUnexpectedType);
        }
        if depth > MAX_DEPTH {
            return Err(Error::InvalidCbor);
        }
        self.fields(arg, depth, fields)
    }

    /// Walks `count` map entries with text keys, checking the listed fields.
    fn fields(&mut self, count: u64, depth: usize, fields: &[(&str, Expect)]) -> Result<(), Error> {
        for _ in 0..count {
            let (kmajor, karg) = self.head()?;
            if kmajor != TEXT {
                self.skip_content(kmajor, karg, depth + 1)?;
                self.skip(depth + 1)?;
                continue;
            }
            let key = self.take(karg)?;
            match fields.iter().find(|(name, _)| name.as_bytes() == key) {
                Some(&(_, expect)) => self.check(expect, depth + 1)?,
                None => self.skip(depth + 1)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_minimal_maps_and_rejects_garbage() {
        assert_eq!(get_assertion(&[0xA0]), Ok(()));
        assert_eq!(get_assertion(&[]), Err(Error::InvalidCbor));
        assert_eq!(get_assertion(&[0x80]), Err(Error::CborUnexpectedType));
        assert_eq!(get_assertion(&[0xA1, 0x01]), Err(Error::InvalidCbor));
        assert_eq!(get_assertion(&[0xA0, 0x00]), Err(Error::InvalidCbor));
        assert_eq!(get_assertion(&[0xBF, 0xFF]), Err(Error::InvalidCbor));
        // rpId as a byte string
        assert_eq!(
            get_assertion(&[0xA1, 0x01, 0x41, 0x61]),
            Err(Error::CborUnexpectedType)
        );
        // duplicate key
        assert_eq!(
            get_assertion(&[0xA2, 0x01, 0x61, 0x61, 0x01, 0x61, 0x61]),
            Err(Error::InvalidCbor)
        );
    }

    #[test]
    fn rejects_deep_nesting_in_unknown_values() {
        let mut body = std::vec![0xA1, 0x06, 0xA1, 0x61, b'x'];
        body.extend(std::iter::repeat_n(0x81, 5000));
        body.push(0x00);
        assert_eq!(make_credential(&body), Err(Error::InvalidCbor));
        let mut ok = std::vec![0xA1, 0x06, 0xA1, 0x61, b'x'];
        ok.extend(std::iter::repeat_n(0x81, 4));
        ok.push(0x00);
        assert_eq!(make_credential(&ok), Ok(()));
    }

    #[test]
    fn tags_count_as_nesting_levels() {
        // The crash of issue 10: 7,605 tags under an unknown parameter.
        let mut body = std::vec![0xA1, 0x0A];
        body.extend(std::iter::repeat_n(0xC0, 7605));
        body.push(0x00);
        assert_eq!(well_formed(&body), Err(Error::InvalidCbor));
        assert_eq!(get_assertion(&body), Err(Error::InvalidCbor));
        assert_eq!(raw_value(&body, 1), Err(Error::InvalidCbor));
        // Tags and arrays mixed, and tags with long arguments.
        let mut body = std::vec![0xA1, 0x0A];
        for _ in 0..MAX_DEPTH {
            body.extend_from_slice(&[0xDB, 0, 0, 0, 0, 0, 0, 0, 1, 0x81]);
        }
        body.push(0x00);
        assert_eq!(well_formed(&body), Err(Error::InvalidCbor));
        // Up to MAX_DEPTH levels in all, counting the map, are fine.
        let mut ok = std::vec![0xA1, 0x0A];
        ok.extend(std::iter::repeat_n(0xC0, MAX_DEPTH - 1));
        ok.push(0x00);
        assert_eq!(well_formed(&ok), Ok(()));
        assert_eq!(get_assertion(&ok), Ok(()));
        let mut deep = std::vec![0xA1, 0x0A];
        deep.extend(std::iter::repeat_n(0xC0, MAX_DEPTH));
        deep.push(0x00);
        assert_eq!(well_formed(&deep), Err(Error::InvalidCbor));
        // A tagged key.
        assert_eq!(well_formed(&[0xA1, 0xC0, 0x01, 0x02]), Ok(()));
    }

    #[test]
    fn well_formed_is_one_whole_definite_item() {
        assert_eq!(well_formed(&[0xA0]), Ok(()));
        assert_eq!(well_formed(&[0x00]), Ok(()));
        assert_eq!(well_formed(&[0x82, 0x01, 0x02]), Ok(()));
        assert_eq!(well_formed(&[]), Err(Error::InvalidCbor));
        assert_eq!(well_formed(&[0xA0, 0xA0]), Err(Error::InvalidCbor));
        assert_eq!(well_formed(&[0x9F, 0xFF]), Err(Error::InvalidCbor));
        assert_eq!(well_formed(&[0xBF, 0xFF]), Err(Error::InvalidCbor));
        assert_eq!(well_formed(&[0x5F, 0xFF]), Err(Error::InvalidCbor));
        assert_eq!(well_formed(&[0xFF]), Err(Error::InvalidCbor));
        assert_eq!(well_formed(&[0x1C]), Err(Error::InvalidCbor));
        // Lengths past the end, up to 2^64 - 1.
        for head in [0x5B, 0x7B, 0x9B, 0xBB] {
            let mut body = std::vec![0xA1, 0x01, head];
            body.extend_from_slice(&[0xFF; 8]);
            assert_eq!(well_formed(&body), Err(Error::InvalidCbor), "{head:#x}");
        }
        assert_eq!(
            well_formed(&[0x9A, 0xFF, 0xFF, 0xFF, 0xFF, 0x00]),
            Err(Error::InvalidCbor)
        );
        // Deep arrays and maps.
        let mut arrays = std::vec![0x81; 5000];
        arrays.push(0);
        assert_eq!(well_formed(&arrays), Err(Error::InvalidCbor));
        let mut maps = std::vec::Vec::new();
        for _ in 0..3000 {
            maps.extend_from_slice(&[0xA1, 0x00]);
        }
        maps.push(0);
        assert_eq!(well_formed(&maps), Err(Error::InvalidCbor));
    }

    #[test]
    fn raw_value_returns_the_bytes_as_received() {
        // {1: 2, 2: {1: h'AA'}, 3: 1}
        let body = [0xA3, 0x01, 0x02, 0x02, 0xA1, 0x01, 0x41, 0xAA, 0x03, 0x01];
        assert_eq!(raw_value(&body, 2), Ok(Some(&body[4..8])));
        assert_eq!(raw_value(&body, 1), Ok(Some(&body[2..3])));
        assert_eq!(raw_value(&body, 9), Ok(None));
        assert_eq!(uint_value(&body, 1), Ok(Some(2)));
        assert_eq!(uint_value(&body, 2), Err(Error::CborUnexpectedType));
        assert_eq!(array_len(&[0x85, 0x01]), Some(5));
        assert_eq!(array_len(&[0xA5]), None);
        assert_eq!(array_len(&[]), None);
        // A non-canonical encoding is returned unchanged: 1 as 0x18 0x01.
        let wide = [0xA1, 0x02, 0x18, 0x01];
        assert_eq!(raw_value(&wide, 2), Ok(Some(&wide[2..])));
        assert_eq!(uint_value(&wide, 2), Ok(Some(1)));
        // Malformed bodies.
        assert_eq!(raw_value(&[], 1), Err(Error::InvalidCbor));
        assert_eq!(raw_value(&[0x80], 1), Err(Error::CborUnexpectedType));
        assert_eq!(raw_value(&body[..9], 1), Err(Error::InvalidCbor));
        assert_eq!(
            raw_value(&[0xA1, 0x01, 0x02, 0x00], 1),
            Err(Error::InvalidCbor)
        );
        assert_eq!(
            raw_value(&[0xA2, 0x01, 0x02, 0x01, 0x03], 1),
            Err(Error::InvalidCbor),
            "duplicate key"
        );
    }

    #[test]
    fn option_values_must_be_bool() {
        // {5: {"up": 1}}
        let body = [0xA1, 0x05, 0xA1, 0x62, b'u', b'p', 0x01];
        assert_eq!(get_assertion(&body), Err(Error::CborUnexpectedType));
        // unknown option with odd value is ignored
        let body = [0xA1, 0x05, 0xA1, 0x62, b'z', b'z', 0x01];
        assert_eq!(get_assertion(&body), Ok(()));
    }
}

//! NDJSON line checks: each line one JSON object, no key twice, no object or
//! array where a scalar is expected. The loader rejects such lines into the
//! quarantine; the SQL file functions refuse the file.

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Deserializer as _;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

/// Why a line is not a record. Its text is the reason a load's quarantine
/// keeps, and what `read_json` reports.
#[derive(Debug, thiserror::Error)]
pub enum LineProblem {
    #[error("not a JSON object (found {found}); each line must be one JSON object")]
    NotObject { found: &'static str },
    #[error("duplicate key `{key}`: its value is ambiguous")]
    DuplicateKey { key: String },
    #[error("duplicate key `{key}` in a nested object: its value is ambiguous")]
    DuplicateNestedKey { key: String },
    /// An object or array where a scalar column's value is expected.
    #[error("column `{column}`: {found} is not a valid {type_name}")]
    NotScalar {
        column: String,
        found: &'static str,
        type_name: String,
    },
    #[error("column `{column}`: a number out of range{}", match .type_name {
        Some(t) => format!(" for {t}"),
        None => String::new(),
    })]
    OutOfRange {
        column: String,
        type_name: Option<String>,
    },
    #[error("malformed JSON: {0}")]
    Malformed(serde_json::Error),
}

/// Checks one line: a JSON object, no key twice (its value would be ambiguous),
/// no object or array as the value of a scalar column.
pub fn check_line(
    line: &[u8],
    scalars: &HashMap<String, String>,
) -> std::result::Result<(), LineProblem> {
    let mut problem = None;
    let mut de = serde_json::Deserializer::from_slice(line);
    let checked = (&mut de)
        .deserialize_any(Line {
            scalars,
            problem: &mut problem,
        })
        .and_then(|()| de.end());
    match checked {
        Ok(()) => Ok(()),
        Err(e) => Err(problem.unwrap_or(LineProblem::Malformed(e))),
    }
}

/// The top level of a line.
struct Line<'a> {
    scalars: &'a HashMap<String, String>,
    problem: &'a mut Option<LineProblem>,
}

impl Line<'_> {
    fn not_object<E: de::Error>(self, found: &'static str) -> std::result::Result<(), E> {
        *self.problem = Some(LineProblem::NotObject { found });
        Err(E::custom("not an object"))
    }
}

impl<'de> Visitor<'de> for Line<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let mut keys: Vec<Cow<'de, str>> = Vec::new();
        while let Some(key) = map.next_key_seed(Key)? {
            if keys.contains(&key) {
                *self.problem = Some(LineProblem::DuplicateKey {
                    key: key.into_owned(),
                });
                return Err(de::Error::custom("duplicate key"));
            }
            let checked = match self.scalars.get(key.as_ref()) {
                Some(dt) => map.next_value_seed(Scalar {
                    column: &key,
                    type_name: dt,
                    problem: &mut *self.problem,
                }),
                None => map.next_value_seed(Nested {
                    problem: &mut *self.problem,
                }),
            };
            if let Err(e) = checked {
                if self.problem.is_none() && e.to_string().starts_with("number out of range") {
                    *self.problem = Some(LineProblem::OutOfRange {
                        column: key.to_string(),
                        type_name: self.scalars.get(key.as_ref()).cloned(),
                    });
                }
                return Err(e);
            }
            keys.push(key);
        }
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<(), E> {
        self.not_object("null")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<(), E> {
        self.not_object("a boolean")
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<(), E> {
        self.not_object("a number")
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<(), E> {
        self.not_object("a number")
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<(), E> {
        self.not_object("a number")
    }
    fn visit_str<E: de::Error>(self, _: &str) -> std::result::Result<(), E> {
        self.not_object("a string")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> std::result::Result<(), A::Error> {
        self.not_object("an array")
    }
}

/// A key, borrowed from the line when it has no escape.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;
    fn deserialize<D: de::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> std::result::Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }
}

/// The value of a scalar column: anything but an object or an array.
struct Scalar<'a> {
    column: &'a str,
    type_name: &'a str,
    problem: &'a mut Option<LineProblem>,
}

/// Visitor methods that accept every JSON scalar (null, booleans, numbers,
/// strings) as it is.
macro_rules! accept_scalars {
    () => {
        fn visit_unit<E: de::Error>(self) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_str<E: de::Error>(self, _: &str) -> std::result::Result<(), E> {
            Ok(())
        }
    };
}

impl Scalar<'_> {
    fn nested<E: de::Error>(self, found: &'static str) -> std::result::Result<(), E> {
        *self.problem = Some(LineProblem::NotScalar {
            column: self.column.to_string(),
            found,
            type_name: self.type_name.to_string(),
        });
        Err(E::custom("nested value"))
    }
}

impl<'de> DeserializeSeed<'de> for Scalar<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Scalar<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a scalar value")
    }
    accept_scalars!();
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> std::result::Result<(), A::Error> {
        self.nested("a JSON object")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> std::result::Result<(), A::Error> {
        self.nested("a JSON array")
    }
}

/// Any other value: objects inside it may not repeat a key either.
struct Nested<'a> {
    problem: &'a mut Option<LineProblem>,
}

impl<'de> DeserializeSeed<'de> for Nested<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Nested<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    accept_scalars!();
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        while seq
            .next_element_seed(Nested {
                problem: &mut *self.problem,
            })?
            .is_some()
        {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let mut keys: Vec<Cow<'de, str>> = Vec::new();
        while let Some(key) = map.next_key_seed(Key)? {
            if keys.contains(&key) {
                *self.problem = Some(LineProblem::DuplicateNestedKey {
                    key: key.into_owned(),
                });
                return Err(de::Error::custom("duplicate key"));
            }
            map.next_value_seed(Nested {
                problem: &mut *self.problem,
            })?;
            keys.push(key);
        }
        Ok(())
    }
}

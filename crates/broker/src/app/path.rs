//! Deserializing destination variables into a handler's `Path<T>`: one variable into a scalar
//! (`Path<String>`, `Path<u32>`), several into a tuple in pattern order, or into a struct or map
//! by name. Values are text; numbers and booleans are parsed on request, and a value that does
//! not parse is an error naming the variable.

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, Deserializer, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;

/// Why destination variables did not deserialize; the message names the variable and the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathError(pub(crate) String);

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PathError {}

impl de::Error for PathError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        PathError(msg.to_string())
    }
}

/// All the variables of one match.
pub(crate) struct PathDeserializer<'a>(pub(crate) &'a [(Box<str>, Box<str>)]);

/// One variable's value.
struct Value<'a> {
    name: &'a str,
    value: &'a str,
}

impl<'a> IntoDeserializer<'a, PathError> for Value<'a> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

macro_rules! parse_value {
    ($($method:ident => $visit:ident),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
            match self.value.parse() {
                Ok(v) => visitor.$visit(v),
                Err(e) => Err(PathError(format!(
                    "destination variable {:?} = {:?}: {e}",
                    self.name, self.value
                ))),
            }
        }
    )*};
}

impl<'de> Deserializer<'de> for Value<'de> {
    type Error = PathError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        visitor.visit_borrowed_str(self.value)
    }

    parse_value! {
        deserialize_bool => visit_bool,
        deserialize_i8 => visit_i8, deserialize_i16 => visit_i16,
        deserialize_i32 => visit_i32, deserialize_i64 => visit_i64,
        deserialize_u8 => visit_u8, deserialize_u16 => visit_u16,
        deserialize_u32 => visit_u32, deserialize_u64 => visit_u64,
        deserialize_f32 => visit_f32, deserialize_f64 => visit_f64,
        deserialize_char => visit_char,
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, PathError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, PathError> {
        visitor.visit_enum(self.value.into_deserializer())
    }

    forward_to_deserialize_any! {
        i128 u128 str string bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

impl<'de> PathDeserializer<'de> {
    fn values(&self) -> impl Iterator<Item = Value<'de>> + 'de {
        self.0.iter().map(|(name, value)| Value { name, value })
    }

    fn single(&self) -> Result<Value<'de>, PathError> {
        match self.0 {
            [(name, value)] => Ok(Value { name, value }),
            vars => Err(PathError(format!(
                "expected one destination variable, the pattern has {}",
                vars.len()
            ))),
        }
    }

    fn seq<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, PathError> {
        if len != self.0.len() {
            return Err(PathError(format!(
                "expected {len} destination variables, the pattern has {}",
                self.0.len()
            )));
        }
        visitor.visit_seq(SeqDeserializer::new(self.values()))
    }

    fn map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        let pairs = self
            .0
            .iter()
            .map(|(name, value)| (&**name, Value { name, value }));
        visitor.visit_map(MapDeserializer::new(pairs))
    }
}

macro_rules! single_value {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
            self.single()?.$method(visitor)
        }
    )*};
}

impl<'de> Deserializer<'de> for PathDeserializer<'de> {
    type Error = PathError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        match self.0.len() {
            1 => self.single()?.deserialize_any(visitor),
            _ => self.map(visitor),
        }
    }

    single_value! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_f32
        deserialize_f64 deserialize_char deserialize_str deserialize_string deserialize_option
        deserialize_i128 deserialize_u128 deserialize_bytes deserialize_byte_buf
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, PathError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, PathError> {
        self.single()?.deserialize_enum(name, variants, visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        let len = self.0.len();
        self.seq(len, visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, PathError> {
        self.seq(len, visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, PathError> {
        self.seq(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        self.map(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, PathError> {
        self.map(visitor)
    }

    forward_to_deserialize_any! { unit unit_struct identifier ignored_any }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(Box<str>, Box<str>)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    fn de<T: serde::de::DeserializeOwned>(pairs: &[(&str, &str)]) -> Result<T, PathError> {
        let v = vars(pairs);
        T::deserialize(PathDeserializer(&v))
    }

    #[test]
    fn scalars_tuples_structs() {
        assert_eq!(de::<String>(&[("room", "general")]).unwrap(), "general");
        assert_eq!(de::<u32>(&[("id", "42")]).unwrap(), 42);
        assert_eq!(
            de::<(String, u64)>(&[("room", "r"), ("id", "7")]).unwrap(),
            ("r".to_owned(), 7)
        );
        #[derive(Deserialize, Debug, PartialEq)]
        struct P {
            id: u16,
            room: String,
        }
        assert_eq!(
            de::<P>(&[("room", "r"), ("id", "7")]).unwrap(),
            P {
                id: 7,
                room: "r".into()
            }
        );
    }

    #[test]
    fn errors_name_the_variable() {
        let e = de::<u32>(&[("id", "x1")]).unwrap_err();
        assert_eq!(
            e.0,
            "destination variable \"id\" = \"x1\": invalid digit found in string"
        );
        let e = de::<(String, String, String)>(&[("a", "1"), ("b", "2")]).unwrap_err();
        assert!(e.0.contains("expected 3 destination variables"), "{e}");
        let e = de::<String>(&[]).unwrap_err();
        assert!(e.0.contains("has 0"), "{e}");
    }
}

//! Decoding with an allocation budget.
//!
//! postcard spends one byte on an empty vector or a `None`, which decode into 24 bytes or
//! more of memory; a peer that fills a payload with them makes a 16 MiB payload decode into
//! hundreds of megabytes (measured: about 24× for a catch-up answer of empty transactions).
//! [`Budgeted`] wraps any serde deserializer and charges, as it decodes:
//!
//! - every element of a variable-length sequence or map: the in-memory size of its type
//!   (`size_of::<T>()`, known from the seed), because a `Vec<T>` holds exactly that per
//!   element (fixed-length tuples, arrays and struct fields are inside their parent and cost
//!   nothing extra);
//! - every byte or character buffer: its length.
//!
//! Past the budget the decode fails with a serde error, so the message is refused before the
//! memory is taken. Structure is walked through the wrapper at every level (sequence elements,
//! map entries, `Some`, newtypes, enum variants), so nesting cannot hide an allocation.

use std::{cell::Cell, fmt};

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Visitor};

/// Bytes a decode may still allocate.
#[derive(Debug)]
pub struct Budget {
    left: Cell<usize>,
}

/// The error text of an exceeded budget.
pub const EXCEEDED: &str = "allocation budget exceeded";

impl Budget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> Self {
        Self {
            left: Cell::new(bytes),
        }
    }

    /// What is left.
    pub fn left(&self) -> usize {
        self.left.get()
    }

    fn charge<E: de::Error>(&self, bytes: usize) -> Result<(), E> {
        match self.left.get().checked_sub(bytes) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => {
                self.left.set(0);
                Err(E::custom(EXCEEDED))
            }
        }
    }
}

/// A deserializer that charges what it decodes to a [`Budget`].
pub struct Budgeted<'b, D> {
    inner: D,
    budget: &'b Budget,
}

impl<'b, D> Budgeted<'b, D> {
    /// Wraps `inner`.
    pub fn new(inner: D, budget: &'b Budget) -> Self {
        Self { inner, budget }
    }
}

/// Whether a visited sequence is variable-length (its elements are charged).
#[derive(Clone, Copy)]
enum Kind {
    Collection,
    Fixed,
}

struct BVisitor<'b, V> {
    inner: V,
    budget: &'b Budget,
    kind: Kind,
}

struct BSeed<'b, S> {
    inner: S,
    budget: &'b Budget,
}

struct BSeq<'b, A> {
    inner: A,
    budget: &'b Budget,
    kind: Kind,
}

struct BMap<'b, A> {
    inner: A,
    budget: &'b Budget,
}

struct BEnum<'b, A> {
    inner: A,
    budget: &'b Budget,
}

struct BVariant<'b, A> {
    inner: A,
    budget: &'b Budget,
}

macro_rules! forward {
    ($($method:ident),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            let visitor = BVisitor { inner: visitor, budget: self.budget, kind: Kind::Fixed };
            self.inner.$method(visitor)
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Budgeted<'_, D> {
    type Error = D::Error;

    forward!(
        deserialize_any,
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_option,
        deserialize_unit,
        deserialize_identifier,
        deserialize_ignored_any,
    );

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = BVisitor::fixed(visitor, self.budget);
        self.inner.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = BVisitor::fixed(visitor, self.budget);
        self.inner.deserialize_newtype_struct(name, visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        let visitor = BVisitor {
            inner: visitor,
            budget: self.budget,
            kind: Kind::Collection,
        };
        self.inner.deserialize_seq(visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = BVisitor::fixed(visitor, self.budget);
        self.inner.deserialize_tuple(len, visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = BVisitor::fixed(visitor, self.budget);
        self.inner.deserialize_tuple_struct(name, len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        let visitor = BVisitor {
            inner: visitor,
            budget: self.budget,
            kind: Kind::Collection,
        };
        self.inner.deserialize_map(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = BVisitor::fixed(visitor, self.budget);
        self.inner.deserialize_struct(name, fields, visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = BVisitor::fixed(visitor, self.budget);
        self.inner.deserialize_enum(name, variants, visitor)
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

impl<'b, V> BVisitor<'b, V> {
    fn fixed(inner: V, budget: &'b Budget) -> Self {
        Self {
            inner,
            budget,
            kind: Kind::Fixed,
        }
    }
}

macro_rules! visit_primitive {
    ($($method:ident: $ty:ty),* $(,)?) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.inner.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for BVisitor<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    visit_primitive!(
        visit_bool: bool,
        visit_i8: i8,
        visit_i16: i16,
        visit_i32: i32,
        visit_i64: i64,
        visit_i128: i128,
        visit_u8: u8,
        visit_u16: u16,
        visit_u32: u32,
        visit_u64: u64,
        visit_u128: u128,
        visit_f32: f32,
        visit_f64: f64,
        visit_char: char,
    );

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.budget.charge(v.len())?;
        self.inner.visit_str(v)
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        self.budget.charge(v.len())?;
        self.inner.visit_borrowed_str(v)
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        self.budget.charge(v.len())?;
        self.inner.visit_string(v)
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        self.budget.charge(v.len())?;
        self.inner.visit_bytes(v)
    }

    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
        self.budget.charge(v.len())?;
        self.inner.visit_borrowed_bytes(v)
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
        self.budget.charge(v.len())?;
        self.inner.visit_byte_buf(v)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_none()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner.visit_some(Budgeted::new(d, self.budget))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner
            .visit_newtype_struct(Budgeted::new(d, self.budget))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_seq(BSeq {
            inner: seq,
            budget: self.budget,
            kind: self.kind,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_map(BMap {
            inner: map,
            budget: self.budget,
        })
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_enum(BEnum {
            inner: data,
            budget: self.budget,
        })
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for BSeed<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner.deserialize(Budgeted::new(d, self.budget))
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for BSeq<'_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        let element = self.inner.next_element_seed(BSeed {
            inner: seed,
            budget: self.budget,
        })?;
        // Charged as the element is decoded, before its collection stores it (a `Vec` holds
        // this much per element); its own allocations were charged while it was decoded.
        if let (Kind::Collection, Some(_)) = (self.kind, &element) {
            self.budget.charge(size_of::<T::Value>())?;
        }
        Ok(element)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for BMap<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let key = self.inner.next_key_seed(BSeed {
            inner: seed,
            budget: self.budget,
        })?;
        if key.is_some() {
            self.budget.charge(size_of::<K::Value>())?;
        }
        Ok(key)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        self.budget.charge(size_of::<V::Value>())?;
        self.inner.next_value_seed(BSeed {
            inner: seed,
            budget: self.budget,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, 'b, A: EnumAccess<'de>> EnumAccess<'de> for BEnum<'b, A> {
    type Error = A::Error;
    type Variant = BVariant<'b, A::Variant>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), Self::Error> {
        let (value, variant) = self.inner.variant_seed(BSeed {
            inner: seed,
            budget: self.budget,
        })?;
        Ok((
            value,
            BVariant {
                inner: variant,
                budget: self.budget,
            },
        ))
    }
}

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for BVariant<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), Self::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        self.inner.newtype_variant_seed(BSeed {
            inner: seed,
            budget: self.budget,
        })
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner
            .tuple_variant(len, BVisitor::fixed(visitor, self.budget))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner
            .struct_variant(fields, BVisitor::fixed(visitor, self.budget))
    }
}

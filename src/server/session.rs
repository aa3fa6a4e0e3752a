//! Flight session options (`SetSessionOptions`, `GetSessionOptions`,
//! `CloseSession`): messages of Flight.proto that arrow-flight 59's Flight SQL
//! trait does not route, so they arrive as plain actions.
//!
//! Options: `schema` (schema of unqualified names for this session) and
//! `catalog` (always `sluice`).

use std::collections::HashMap;

pub const SET_SESSION_OPTIONS: &str = "SetSessionOptions";
pub const GET_SESSION_OPTIONS: &str = "GetSessionOptions";
pub const CLOSE_SESSION: &str = "CloseSession";

#[derive(Clone, PartialEq, prost::Message)]
pub struct StringListValue {
    #[prost(string, repeated, tag = "1")]
    pub values: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
#[allow(clippy::enum_variant_names)] // the names of Flight.proto
pub enum OptionValue {
    #[prost(string, tag = "1")]
    StringValue(String),
    #[prost(bool, tag = "2")]
    BoolValue(bool),
    #[prost(sfixed64, tag = "3")]
    Int64Value(i64),
    #[prost(double, tag = "4")]
    DoubleValue(f64),
    #[prost(message, tag = "5")]
    StringListValue(StringListValue),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionOptionValue {
    #[prost(oneof = "OptionValue", tags = "1, 2, 3, 4, 5")]
    pub option_value: Option<OptionValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SetSessionOptionsRequest {
    #[prost(map = "string, message", tag = "1")]
    pub session_options: HashMap<String, SessionOptionValue>,
}

/// `SetSessionOptionsResult.ErrorValue`
pub const INVALID_NAME: i32 = 1;
pub const INVALID_VALUE: i32 = 2;

#[derive(Clone, PartialEq, prost::Message)]
pub struct SetSessionOptionsError {
    #[prost(int32, tag = "1")]
    pub value: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SetSessionOptionsResult {
    #[prost(map = "string, message", tag = "1")]
    pub errors: HashMap<String, SetSessionOptionsError>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetSessionOptionsResult {
    #[prost(map = "string, message", tag = "1")]
    pub session_options: HashMap<String, SessionOptionValue>,
}

/// `CloseSessionResult.Status.CLOSED`
pub const CLOSED: i32 = 1;

#[derive(Clone, PartialEq, prost::Message)]
pub struct CloseSessionResult {
    #[prost(int32, tag = "1")]
    pub status: i32,
}

pub fn string_value(s: impl Into<String>) -> SessionOptionValue {
    SessionOptionValue {
        option_value: Some(OptionValue::StringValue(s.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn set_request_round_trips() {
        let mut req = SetSessionOptionsRequest::default();
        req.session_options
            .insert("schema".into(), string_value("features"));
        let bytes = req.encode_to_vec();
        let back = SetSessionOptionsRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(back, req);
    }
}

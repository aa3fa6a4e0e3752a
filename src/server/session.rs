//! Flight session options (`SetSessionOptions`, `GetSessionOptions`,
//! `CloseSession`): messages of Flight.proto that arrow-flight 59's Flight SQL
//! trait does not route, so they arrive as plain actions (the action
//! fallback) and are decoded and answered here.
//!
//! Options: `schema` (schema of unqualified names for this session) and
//! `catalog` (always `sluice`). They live with the session's token in
//! [`Auth`], which ends with `CloseSession`.

use super::auth::Auth;
use super::caller::Caller;
use crate::sql::CATALOG;
use arrow_flight::{Action, ActionType};
use bytes::Bytes;
use prost::Message;
use std::collections::HashMap;
use tonic::Status;

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

/// The session actions, for ListActions.
pub(super) fn action_types() -> Vec<Result<ActionType, Status>> {
    let a = |t: &str, d: &str| {
        Ok(ActionType {
            r#type: t.to_string(),
            description: d.to_string(),
        })
    };
    vec![
        a(SET_SESSION_OPTIONS, "Set session options (schema)"),
        a(GET_SESSION_OPTIONS, "Get session options"),
        a(CLOSE_SESSION, "Close the session (its token stops working)"),
    ]
}

/// Answers a session action: the body of its one result.
pub(super) fn act(caller: &Caller, auth: &Auth, action: Action) -> Result<Bytes, Status> {
    let token = caller.principal.token.as_deref();
    match action.r#type.as_str() {
        SET_SESSION_OPTIONS => {
            let req = SetSessionOptionsRequest::decode(action.body).map_err(|e| {
                Status::invalid_argument(format!("bad SetSessionOptions request: {e}"))
            })?;
            Ok(set_options(auth, token, req)?.encode_to_vec().into())
        }
        GET_SESSION_OPTIONS => {
            let mut result = GetSessionOptionsResult::default();
            // The caller's engine has the session's schema, else the default.
            let schema = caller.engine().default_schema();
            result
                .session_options
                .insert("schema".into(), string_value(schema));
            result
                .session_options
                .insert("catalog".into(), string_value(CATALOG));
            Ok(result.encode_to_vec().into())
        }
        CLOSE_SESSION => {
            auth.close_session(token);
            Ok(CloseSessionResult { status: CLOSED }.encode_to_vec().into())
        }
        other => Err(Status::unimplemented(format!(
            "action `{other}` is not supported (see ListActions)"
        ))),
    }
}

/// Sets what it can of `req`; the result lists the options it refused.
fn set_options(
    auth: &Auth,
    token: Option<&str>,
    req: SetSessionOptionsRequest,
) -> Result<SetSessionOptionsResult, Status> {
    let mut result = SetSessionOptionsResult::default();
    for (name, value) in req.session_options {
        let error = match value.option_value {
            Some(OptionValue::StringValue(s)) => set_option(auth, token, &name, Some(s))?,
            None => set_option(auth, token, &name, None)?,
            Some(_) => Some(INVALID_VALUE),
        };
        if let Some(value) = error {
            result.errors.insert(name, SetSessionOptionsError { value });
        }
    }
    Ok(result)
}

/// Sets (or with `None` resets) one option; the error value if refused.
fn set_option(
    auth: &Auth,
    token: Option<&str>,
    name: &str,
    text: Option<String>,
) -> Result<Option<i32>, Status> {
    Ok(match name {
        "schema" => match text.map(|s| s.to_ascii_lowercase()) {
            Some(s) if crate::warehouse::is_identifier(&s) => {
                auth.set_session_option(token, "schema", Some(s))?;
                None
            }
            None => {
                auth.set_session_option(token, "schema", None)?;
                None
            }
            Some(_) => Some(INVALID_VALUE),
        },
        "catalog" => match text.as_deref() {
            Some(CATALOG) | None => None,
            Some(_) => Some(INVALID_VALUE),
        },
        _ => Some(INVALID_NAME),
    })
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

//! Flight SQL command decoding and the read-only RPCs of `sluice serve`,
//! called in-process on a warehouse with a table.
//!
//! Input: one byte choosing the RPC, then the bytes a client sends:
//! 0. GetFlightInfo with the bytes as its command (then DoGet of each ticket),
//! 1. GetSchema, 2. DoGet with the bytes as its ticket,
//! 3. DoAction (the action named by the next byte, with the rest as its body),
//! 4. the `authorization` header's Basic credentials (the bytes as text).
//!
//! Invariants: a command that is not a well-formed Flight SQL message is
//! refused with INVALID_ARGUMENT; a decoded command encodes back to itself; no
//! request panics or ends with INTERNAL (the server's word for a bug in sluice).
//!
//! Commands that run SQL or write (statements, prepared statements, ingest)
//! are only decoded: the `sql` target fuzzes SQL, and a run would change the
//! warehouse between inputs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::fuzzing::{flight_command, Code, Command, FlightReply, FlightService};
use std::sync::OnceLock;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    service: FlightService,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_stack_size(64 << 20)
            .enable_all()
            .build()
            .expect("a runtime");
        let service = runtime.block_on(async {
            let wh = sluice::warehouse::Warehouse::open("memory:///", &Default::default())
                .expect("a memory warehouse");
            let engine = sluice::sql::Engine::new(wh, "main")
                .await
                .expect("an engine");
            engine
                .execute(
                    "CREATE TABLE main.prices (id BIGINT NOT NULL, price DOUBLE, ts TIMESTAMP)",
                )
                .await
                .expect("a table");
            FlightService::new(engine).expect("a service")
        });
        Fixture { runtime, service }
    })
}

/// Commands that only read the catalog (safe to run on every input).
fn reads_metadata(c: &Command) -> bool {
    matches!(
        c,
        Command::CommandGetCatalogs(_)
            | Command::CommandGetDbSchemas(_)
            | Command::CommandGetTables(_)
            | Command::CommandGetTableTypes(_)
            | Command::CommandGetSqlInfo(_)
            | Command::CommandGetXdbcTypeInfo(_)
            | Command::CommandGetPrimaryKeys(_)
            | Command::CommandGetExportedKeys(_)
            | Command::CommandGetImportedKeys(_)
            | Command::CommandGetCrossReference(_)
            | Command::Unknown(_)
    )
}

fn not_a_bug(what: &str, reply: &FlightReply) {
    if let Err((code, message)) = reply {
        assert_ne!(*code, Code::Internal, "{what}: {message}");
        assert_ne!(*code, Code::Unknown, "{what}: {message}");
    }
}

/// Decodes `bytes` as the server does; the command if it only reads metadata.
fn decode(bytes: &[u8]) -> Option<Command> {
    match flight_command(bytes) {
        Ok((_, command)) => {
            use sluice::fuzzing::prost::Message;
            let again = command.clone().into_any().encode_to_vec();
            let back = flight_command(&again).map(|(_, c)| c);
            assert_eq!(back, Ok(command.clone()), "encodes back to itself");
            reads_metadata(&command).then_some(command)
        }
        Err((code, message)) => {
            assert_eq!(code, Code::InvalidArgument, "{message}");
            None
        }
    }
}

/// The actions whose body is a Flight SQL message, and the session actions,
/// but not CreatePreparedStatement (it plans SQL).
const ACTIONS: [&str; 10] = [
    "ClosePreparedStatement",
    "CreatePreparedSubstraitPlan",
    "BeginTransaction",
    "EndTransaction",
    "BeginSavepoint",
    "EndSavepoint",
    "CancelQuery",
    "SetSessionOptions",
    "GetSessionOptions",
    "CloseSession",
];

fuzz_target!(|data: &[u8]| {
    let [rpc, bytes @ ..] = data else {
        return;
    };
    let f = fixture();
    match rpc % 5 {
        0 => {
            if decode(bytes).is_some() {
                for reply in f.runtime.block_on(f.service.get(bytes)) {
                    not_a_bug("GetFlightInfo/DoGet", &reply);
                }
            }
        }
        1 => {
            if decode(bytes).is_some() {
                not_a_bug(
                    "GetSchema",
                    &f.runtime.block_on(f.service.get_schema(bytes)),
                );
            }
        }
        2 => {
            if decode(bytes).is_some() {
                not_a_bug("DoGet", &f.runtime.block_on(f.service.do_get_bytes(bytes)));
            }
        }
        3 => {
            let [which, body @ ..] = bytes else {
                return;
            };
            let action = ACTIONS[usize::from(*which) % ACTIONS.len()];
            let _ = sluice::fuzzing::flight_session_options(body);
            not_a_bug(
                action,
                &f.runtime.block_on(f.service.do_action(action, body)),
            );
        }
        _ => {
            if let Ok(header) = std::str::from_utf8(bytes) {
                let _ = sluice::server::auth::parse_basic(header);
            }
        }
    }
});

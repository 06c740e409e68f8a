//! Hrana's protobuf encoding (`/v3-protobuf/pipeline`), client side: a
//! pipeline request of one batch, and its answer.
//!
//! Why not JSON, which the pipeline spoke first and still speaks to a
//! server without this endpoint: in JSON every blob travels as base64, and
//! the migration's windows are read with every text column cast to a blob
//! (to get its exact bytes), so nearly every byte of a window is base64,
//! encoded by the server and decoded here. Measured on sqld with 700
//! legacy rows of 384 dimensions: the answer was 9.0 MB and took the
//! server 34 ms in JSON, 6.7 MB and 12 ms in protobuf. Values travel as
//! they are: blobs as their bytes, integers as varints, floats as their
//! eight bytes, never as decimal text.
//!
//! `libsql-hrana` holds these messages, but for a server: it decodes
//! requests and encodes answers, and panics the other way (its batch
//! conditions, stream results and batch results). So the request's
//! envelope and the answer's are declared here, from the same field
//! numbers; statements, values, statement results and errors are the
//! crate's own, whose encoding works both ways. The tests check this
//! module against the crate's server side: what is encoded here decodes
//! there, and what the server encodes decodes here.

use libsql_hrana::proto;
use prost::Message;

/// The content type of both directions.
pub const CONTENT_TYPE: &str = "application/x-protobuf";

/// `PipelineReqBody` with one batch.
#[derive(Clone, prost::Message)]
struct PipelineReq {
    #[prost(string, optional, tag = "1")]
    baton: Option<String>,
    #[prost(message, repeated, tag = "2")]
    requests: Vec<StreamReq>,
}

/// `StreamRequest`: only the batch is sent.
#[derive(Clone, prost::Message)]
struct StreamReq {
    #[prost(oneof = "StreamReqKind", tags = "3")]
    kind: Option<StreamReqKind>,
}

#[derive(Clone, prost::Oneof)]
enum StreamReqKind {
    #[prost(message, tag = "3")]
    Batch(BatchReq),
}

/// `BatchStreamReq`.
#[derive(Clone, prost::Message)]
struct BatchReq {
    #[prost(message, optional, tag = "1")]
    batch: Option<Batch>,
}

/// `Batch`.
#[derive(Clone, prost::Message)]
struct Batch {
    #[prost(message, repeated, tag = "1")]
    steps: Vec<Step>,
}

/// `BatchStep`.
#[derive(Clone, prost::Message)]
struct Step {
    #[prost(message, optional, tag = "1")]
    condition: Option<Cond>,
    #[prost(message, optional, tag = "2")]
    stmt: Option<proto::Stmt>,
}

/// `BatchCond`.
#[derive(Clone, prost::Message)]
struct Cond {
    #[prost(oneof = "CondKind", tags = "1, 2, 3, 4, 5, 6")]
    kind: Option<CondKind>,
}

#[derive(Clone, prost::Oneof)]
enum CondKind {
    #[prost(uint32, tag = "1")]
    Ok(u32),
    #[prost(uint32, tag = "2")]
    Error(u32),
    #[prost(message, tag = "3")]
    Not(Box<Cond>),
    #[prost(message, tag = "4")]
    And(CondList),
    #[prost(message, tag = "5")]
    Or(CondList),
    #[prost(message, tag = "6")]
    IsAutocommit(Empty),
}

/// `BatchCondList`.
#[derive(Clone, prost::Message)]
struct CondList {
    #[prost(message, repeated, tag = "1")]
    conds: Vec<Cond>,
}

#[derive(Clone, prost::Message)]
struct Empty {}

/// `PipelineRespBody`.
#[derive(prost::Message)]
struct PipelineResp {
    #[prost(string, optional, tag = "1")]
    baton: Option<String>,
    #[prost(string, optional, tag = "2")]
    base_url: Option<String>,
    #[prost(message, repeated, tag = "3")]
    results: Vec<StreamRes>,
}

/// `StreamResult`.
#[derive(prost::Message)]
struct StreamRes {
    #[prost(oneof = "StreamResKind", tags = "1, 2")]
    kind: Option<StreamResKind>,
}

#[derive(prost::Oneof)]
enum StreamResKind {
    #[prost(message, tag = "1")]
    Ok(StreamResp),
    #[prost(message, tag = "2")]
    Error(proto::Error),
}

/// `StreamResponse`: only a batch's answer is expected (any other decodes
/// as none, and is refused by the caller as unexpected).
#[derive(prost::Message)]
struct StreamResp {
    #[prost(oneof = "StreamRespKind", tags = "3")]
    kind: Option<StreamRespKind>,
}

#[derive(prost::Oneof)]
enum StreamRespKind {
    #[prost(message, tag = "3")]
    Batch(BatchResp),
}

/// `BatchStreamResp`.
#[derive(prost::Message)]
struct BatchResp {
    #[prost(message, optional, tag = "1")]
    result: Option<BatchRes>,
}

/// `BatchResult`: results and errors keyed by the step's index (protobuf
/// maps, whose entries are messages of a key and a value).
#[derive(prost::Message)]
struct BatchRes {
    #[prost(message, repeated, tag = "1")]
    step_results: Vec<Entry<proto::StmtResult>>,
    #[prost(message, repeated, tag = "2")]
    step_errors: Vec<Entry<proto::Error>>,
    #[prost(uint64, optional, tag = "3")]
    replication_index: Option<u64>,
}

/// One entry of a map from a step's index.
#[derive(prost::Message)]
struct Entry<T: prost::Message + Default> {
    #[prost(uint32, tag = "1")]
    step: u32,
    #[prost(message, optional, tag = "2")]
    value: Option<T>,
}

/// A condition, or `None` for one this client never sends.
fn cond(c: &proto::BatchCond) -> Option<Cond> {
    let kind = match c {
        proto::BatchCond::None => return None,
        proto::BatchCond::Ok { step } => CondKind::Ok(*step),
        proto::BatchCond::Error { step } => CondKind::Error(*step),
        proto::BatchCond::Not { cond: inner } => CondKind::Not(Box::new(cond(inner)?)),
        proto::BatchCond::And(list) => CondKind::And(cond_list(list)?),
        proto::BatchCond::Or(list) => CondKind::Or(cond_list(list)?),
        proto::BatchCond::IsAutocommit {} => CondKind::IsAutocommit(Empty {}),
    };
    Some(Cond { kind: Some(kind) })
}

fn cond_list(list: &proto::BatchCondList) -> Option<CondList> {
    Some(CondList {
        conds: list.conds.iter().map(cond).collect::<Option<_>>()?,
    })
}

/// The request body for one batch of `steps` on the stream of `baton`.
pub fn encode_batch(baton: Option<&str>, steps: &[proto::BatchStep]) -> Vec<u8> {
    let steps = steps
        .iter()
        .map(|s| Step {
            condition: s.condition.as_ref().and_then(cond),
            stmt: Some(s.stmt.clone()),
        })
        .collect();
    PipelineReq {
        baton: baton.map(str::to_string),
        requests: vec![StreamReq {
            kind: Some(StreamReqKind::Batch(BatchReq {
                batch: Some(Batch { steps }),
            })),
        }],
    }
    .encode_to_vec()
}

/// The answer to [`encode_batch`], as the JSON answer would have decoded:
/// `steps` results and errors, in step order.
pub fn decode_answer(
    bytes: &[u8],
    steps: usize,
) -> Result<proto::PipelineRespBody, prost::DecodeError> {
    let resp = PipelineResp::decode(bytes)?;
    let results = resp
        .results
        .into_iter()
        .map(|r| match r.kind {
            Some(StreamResKind::Ok(StreamResp {
                kind: Some(StreamRespKind::Batch(b)),
            })) => {
                let result = b.result.unwrap_or_default();
                proto::StreamResult::Ok {
                    response: proto::StreamResponse::Batch(proto::BatchStreamResp {
                        result: proto::BatchResult {
                            step_results: by_step(result.step_results, steps),
                            step_errors: by_step(result.step_errors, steps),
                            replication_index: result.replication_index,
                        },
                    }),
                }
            }
            Some(StreamResKind::Error(error)) => proto::StreamResult::Error { error },
            _ => proto::StreamResult::None,
        })
        .collect();
    Ok(proto::PipelineRespBody {
        baton: resp.baton,
        base_url: resp.base_url,
        results,
    })
}

/// A map's entries as a list of `steps` (none where a step has no entry;
/// an entry past the steps is left out).
fn by_step<T: prost::Message + Default>(entries: Vec<Entry<T>>, steps: usize) -> Vec<Option<T>> {
    let mut out: Vec<Option<T>> = (0..steps).map(|_| None).collect();
    for entry in entries {
        if let Some(slot) = out.get_mut(entry.step as usize) {
            *slot = entry.value;
        }
    }
    out
}

/// An error answer's text, as it reads in JSON (`{"message":…,"code":…}`),
/// so that errors are judged alike whichever encoding carried them.
pub fn error_text(bytes: &[u8]) -> Option<String> {
    let error = proto::Error::decode(bytes).ok()?;
    serde_json::to_string(&error).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stmt(sql: &str, args: Vec<proto::Value>) -> proto::Stmt {
        let mut s = proto::Stmt::new(sql, true);
        s.args = args;
        s
    }

    #[test]
    fn a_batch_decodes_on_the_server_side_as_it_was_built() {
        let vector: Vec<u8> = [f32::MIN_POSITIVE, -0.0, f32::NAN, 1.0 / 3.0]
            .iter()
            .flat_map(|f| f.to_le_bytes())
            .collect();
        let steps = vec![
            proto::BatchStep {
                condition: None,
                stmt: stmt("BEGIN IMMEDIATE", vec![]),
            },
            proto::BatchStep {
                condition: Some(proto::BatchCond::Ok { step: 0 }),
                stmt: stmt(
                    "INSERT INTO t VALUES (?, ?, ?, ?, ?)",
                    vec![
                        proto::Value::Null,
                        proto::Value::Integer { value: i64::MIN },
                        proto::Value::Float { value: 0.1 + 0.2 },
                        proto::Value::Text {
                            value: "ünïcode 'quoted' \"\\\n".into(),
                        },
                        proto::Value::Blob {
                            value: vector.into(),
                        },
                    ],
                ),
            },
            proto::BatchStep {
                condition: Some(proto::BatchCond::Not {
                    cond: Box::new(proto::BatchCond::And(proto::BatchCondList {
                        conds: vec![
                            proto::BatchCond::Ok { step: 1 },
                            proto::BatchCond::Or(proto::BatchCondList {
                                conds: vec![
                                    proto::BatchCond::Error { step: 0 },
                                    proto::BatchCond::IsAutocommit {},
                                ],
                            }),
                        ],
                    })),
                }),
                stmt: stmt("ROLLBACK", vec![]),
            },
        ];
        let bytes = encode_batch(Some("baton-1"), &steps);
        // libSQL's server side decodes it.
        let decoded = proto::PipelineReqBody::decode(bytes.as_slice()).unwrap();
        let sent = proto::PipelineReqBody {
            baton: Some("baton-1".into()),
            requests: vec![proto::StreamRequest::Batch(proto::BatchStreamReq {
                batch: proto::Batch {
                    steps,
                    replication_index: None,
                },
            })],
        };
        // Compared through their JSON (the crate's types have no `PartialEq`).
        assert_eq!(
            serde_json::to_value(&decoded).unwrap(),
            serde_json::to_value(&sent).unwrap()
        );
    }

    #[test]
    fn an_answer_encoded_by_the_server_side_decodes_as_its_json_would() {
        let row = |values: Vec<proto::Value>| proto::Row { values };
        let result = proto::StmtResult {
            cols: vec![],
            rows: vec![
                row(vec![
                    proto::Value::Integer { value: -7 },
                    proto::Value::Blob {
                        value: vec![0u8, 255, 128].into(),
                    },
                ]),
                row(vec![
                    proto::Value::Text {
                        value: "é\u{0}x".into(),
                    },
                    proto::Value::Null,
                ]),
                row(vec![proto::Value::Float { value: -0.0 }]),
            ],
            affected_row_count: 3,
            last_insert_rowid: Some(9),
            replication_index: None,
            rows_read: 4,
            rows_written: 5,
            query_duration_ms: 1.5,
        };
        let error = proto::Error {
            message: "UNIQUE constraint failed".into(),
            code: "SQLITE_CONSTRAINT_PRIMARYKEY".into(),
        };
        let body = proto::PipelineRespBody {
            baton: Some("b".into()),
            base_url: Some("http://elsewhere".into()),
            results: vec![proto::StreamResult::Ok {
                response: proto::StreamResponse::Batch(proto::BatchStreamResp {
                    result: proto::BatchResult {
                        step_results: vec![Some(result), None, None],
                        step_errors: vec![None, Some(error), None],
                        replication_index: None,
                    },
                }),
            }],
        };
        let bytes = body.encode_to_vec();
        let decoded = decode_answer(&bytes, 3).unwrap();
        assert_eq!(
            serde_json::to_value(&decoded).unwrap(),
            serde_json::to_value(&body).unwrap()
        );
    }

    #[test]
    fn an_error_answer_reads_as_its_json() {
        let error = proto::Error {
            message: "stream expired".into(),
            code: "STREAM_EXPIRED".into(),
        };
        assert_eq!(
            error_text(&error.encode_to_vec()).unwrap(),
            r#"{"message":"stream expired","code":"STREAM_EXPIRED"}"#
        );
    }
}

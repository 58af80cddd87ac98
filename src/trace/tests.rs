//! Tests of the trace renderers on small traces written by hand.
//!
//! Each scenario is a story a student will meet in the simulator — a write broadcast to
//! everyone, a message lost to a partition, a crash — built from the same [`Message`]s and
//! detail strings the modes and drivers emit. Its diagram is snapshotted (read the `.snap`
//! files: they are the documentation's pictures), and the properties every diagram must have
//! are asserted directly, here and over random traces.

use proptest::prelude::*;

use super::*;
use crate::node::{Message, MsgId, Operation, Stamp, Write};

/// A client's, a delivery's or an apply's event on `node`, at `at_us`.
fn local(
    at_us: u64,
    node: NodeId,
    lamport: u64,
    kind: TraceKind,
    msg_id: Option<MsgId>,
    detail: &str,
) -> TraceEvent {
    TraceEvent {
        node,
        lamport,
        kind,
        msg_id,
        peer: None,
        message: None,
        detail: detail.to_string(),
        at_us: Some(at_us),
    }
}

/// `message` leaving `node` for `peer`, as the modes trace it.
fn send(at_us: u64, node: NodeId, lamport: u64, peer: NodeId, message: &Message) -> TraceEvent {
    let detail = format!("to n{peer}: {message}");
    timed(
        at_us,
        TraceEvent::link(node, lamport, TraceKind::Send, peer, message, detail),
    )
}

/// `message` from `peer` arriving at `node`, as the modes trace it.
fn receive(at_us: u64, node: NodeId, lamport: u64, peer: NodeId, message: &Message) -> TraceEvent {
    let detail = format!("from n{peer}: {message}");
    timed(
        at_us,
        TraceEvent::link(node, lamport, TraceKind::Receive, peer, message, detail),
    )
}

/// `message` from `node` to `peer` lost to a partition, as the sending driver traces it.
fn dropped(at_us: u64, node: NodeId, peer: NodeId, message: &Message) -> TraceEvent {
    let detail = format!("to n{peer}: {message} (dropped: partitioned)");
    timed(
        at_us,
        TraceEvent::link(node, message.time(), TraceKind::Drop, peer, message, detail),
    )
}

/// A fault injected by the driver.
fn fault(at_us: u64, node: NodeId, peer: Option<NodeId>, detail: &str) -> TraceEvent {
    TraceEvent {
        peer,
        ..local(at_us, node, 0, TraceKind::Fault, None, detail)
    }
}

fn timed(at_us: u64, e: TraceEvent) -> TraceEvent {
    TraceEvent {
        at_us: Some(at_us),
        ..e
    }
}

fn set_x() -> Operation {
    Operation::Write(Write {
        key: b"x".to_vec(),
        value: Some(b"1".to_vec()),
    })
}

/// Lamport-clock total order on three nodes: n1 broadcasts a write to n2 and n3 (the arrow to
/// n3 crosses n2), both acknowledge to everyone (arrows right to left, one crossing n2), and
/// n1 delivers, applies and answers once everyone is past the write's stamp.
fn broadcast_with_acks() -> Vec<TraceEvent> {
    let id = MsgId::new(1, 1);
    let broadcast = Message::Broadcast {
        id,
        stamp: Stamp::new(2, 1),
        op: set_x(),
    };
    let ack = |from: NodeId, time: u64| Message::Ack {
        id,
        stamp: Stamp::new(time, from),
        last_own: 0,
    };
    let (ack2, ack3) = (ack(2, 3), ack(3, 3));
    vec![
        local(
            1_000,
            1,
            1,
            TraceKind::ClientRequest,
            None,
            "request 1: set x (1 B)",
        ),
        send(1_000, 1, 2, 2, &broadcast),
        send(1_000, 1, 2, 3, &broadcast),
        receive(1_180, 2, 3, 1, &broadcast),
        send(1_180, 2, 3, 1, &ack2),
        send(1_180, 2, 3, 3, &ack2),
        receive(1_240, 3, 3, 1, &broadcast),
        send(1_240, 3, 3, 1, &ack3),
        send(1_240, 3, 3, 2, &ack3),
        receive(1_390, 1, 4, 2, &ack2),
        receive(1_450, 3, 4, 2, &ack2),
        receive(1_510, 1, 5, 3, &ack3),
        local(
            1_510,
            1,
            5,
            TraceKind::Deliver,
            Some(id),
            "2:n1 n1#1 set x (1 B)",
        ),
        local(1_510, 1, 5, TraceKind::Apply, Some(id), "2:n1 set x (1 B)"),
        local(
            1_510,
            1,
            5,
            TraceKind::ClientReply,
            Some(id),
            "request 1: ok",
        ),
        receive(1_620, 2, 5, 3, &ack3),
    ]
}

/// Fixed-sequencer order with n1 the sequencer: n2's write is forwarded to n1 (right to left),
/// numbered and sent to both followers, but n3 is cut off from n1 and the `ordered` message to
/// it is lost; then n3 crashes and restarts.
fn sequencer_with_drop_and_faults() -> Vec<TraceEvent> {
    let id = MsgId::new(2, 1);
    let forward = Message::Forward {
        id,
        op: set_x(),
        after: None,
        delivered: 0,
        time: 2,
    };
    let ordered = Message::Ordered {
        seq: 1,
        id,
        op: set_x(),
        time: 4,
    };
    vec![
        fault(500, 3, Some(1), "partitioned from n1"),
        local(
            1_000,
            2,
            1,
            TraceKind::ClientRequest,
            None,
            "request 7: set x (1 B)",
        ),
        send(1_000, 2, 2, 1, &forward),
        receive(1_130, 1, 3, 2, &forward),
        local(1_130, 1, 4, TraceKind::Deliver, Some(id), "1: set x (1 B)"),
        local(1_130, 1, 4, TraceKind::Apply, Some(id), "1: set x (1 B)"),
        send(1_130, 1, 4, 2, &ordered),
        dropped(1_130, 1, 3, &ordered),
        receive(1_290, 2, 5, 1, &ordered),
        local(1_290, 2, 5, TraceKind::Deliver, Some(id), "1: set x (1 B)"),
        local(1_290, 2, 5, TraceKind::Apply, Some(id), "1: set x (1 B)"),
        local(
            1_290,
            2,
            5,
            TraceKind::ClientReply,
            Some(id),
            "request 7: ok",
        ),
        fault(2_000, 3, None, "crashed"),
        fault(2_500, 3, None, "restarted"),
        fault(3_000, 3, Some(1), "healed from n1"),
    ]
}

/// Every line of a rendering: at most `width` characters, no trailing spaces, `\n`-terminated.
fn assert_well_formed(text: &str, width: usize) {
    assert!(text.is_empty() || text.ends_with('\n'), "{text:?}");
    for line in text.lines() {
        assert!(
            line.chars().count() <= width,
            "{} chars > {width}: {line:?}",
            line.chars().count()
        );
        assert_eq!(line, line.trim_end(), "trailing space: {line:?}");
    }
}

#[test]
fn diagram_of_a_broadcast_with_acks() {
    let events = broadcast_with_acks();
    let options = DiagramOptions::default();
    let text = diagram(&events, &[1, 2, 3], &options);
    assert_well_formed(&text, options.width);
    // A header and one row per event except the six sends.
    assert_eq!(text.lines().count(), 1 + events.len() - 6);
    insta::assert_snapshot!(text);
}

#[test]
fn diagram_with_send_rows() {
    let events = broadcast_with_acks();
    let options = DiagramOptions {
        sends: true,
        ..DiagramOptions::default()
    };
    let text = diagram(&events, &[1, 2, 3], &options);
    assert_well_formed(&text, options.width);
    assert_eq!(text.lines().count(), 1 + events.len());
    insta::assert_snapshot!(text);
}

#[test]
fn diagram_of_a_drop_and_faults() {
    let events = sequencer_with_drop_and_faults();
    let options = DiagramOptions::default();
    let text = diagram(&events, &[1, 2, 3], &options);
    assert_well_formed(&text, options.width);
    let drop_row = text
        .lines()
        .find(|l| l.contains("dropped"))
        .expect("the drop has a row");
    // From n1's lifeline, across n2's, to n3's: lost there.
    assert!(
        drop_row.contains('✗') && drop_row.contains('┼'),
        "{drop_row}"
    );
    assert!(
        !drop_row.contains('▶'),
        "a lost message has no head: {drop_row}"
    );
    insta::assert_snapshot!(text);
}

#[test]
fn diagram_squeezes_five_nodes_and_long_notes_into_the_width() {
    // Nodes listed out of order, one (n9) only seen in an event: it gets a column at the end.
    let mut events = broadcast_with_acks();
    let id = MsgId::new(4, 12);
    let update = Message::Update {
        id,
        stamp: Stamp::new(40, 4),
        write: Write {
            key: b"a-rather-long-key-name-that-goes-on".to_vec(),
            value: Some(vec![0; 4096]),
        },
    };
    events.push(receive(2_000, 5, 41, 4, &update));
    events.push(receive(2_100, 9, 41, 4, &update));
    events.push(receive(
        2_200,
        4,
        42,
        9,
        &Message::UpdateAck { id, time: 41 },
    ));
    for width in [100, 72] {
        let options = DiagramOptions {
            width,
            ..DiagramOptions::default()
        };
        let text = diagram(&events, &[4, 1, 2, 3, 5], &options);
        assert_well_formed(&text, width);
        assert!(text.lines().next().is_some_and(|h| h.ends_with("n9")));
        insta::assert_snapshot!(format!("six_columns_width_{width}"), text);
    }
}

#[test]
fn diagram_without_times_has_no_margin() {
    let events: Vec<TraceEvent> = broadcast_with_acks()
        .into_iter()
        .map(|e| TraceEvent { at_us: None, ..e })
        .take(4)
        .collect();
    let text = diagram(&events, &[1, 2, 3], &DiagramOptions::default());
    assert!(text.starts_with("n1 "), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn diagram_labels_keep_the_id_when_the_kind_must_be_cut() {
    let cases: &[(Option<&str>, Option<MsgId>, usize, &str)] = &[
        (Some("ordered"), Some(MsgId::new(1, 4)), 20, "ordered n1#4"),
        (Some("ordered"), Some(MsgId::new(1, 4)), 12, "ordered n1#4"),
        (Some("ordered"), Some(MsgId::new(1, 4)), 10, "orde… n1#4"),
        (
            Some("update_ack"),
            Some(MsgId::new(12, 345)),
            12,
            "upd… n12#345",
        ),
        (Some("ordered"), Some(MsgId::new(1, 4)), 5, "orde…"),
        (Some("catch_up"), None, 6, "catch…"),
        (None, None, 20, "message"),
        (Some("ack"), Some(MsgId::new(1, 4)), 0, ""),
    ];
    for &(kind, id, room, want) in cases {
        let got = diagram::label(kind, id, room);
        assert!(got.chars().count() <= room, "{got:?} wider than {room}");
        if want.chars().count() <= room {
            assert_eq!(got, want, "{kind:?} {id:?} in {room}");
        }
    }
}

#[test]
fn diagram_degrades_gracefully_on_odd_input() {
    let ack = Message::UpdateAck {
        id: MsgId::new(1, 1),
        time: 3,
    };
    let mut odd = vec![
        // A receipt with no sender recorded: a mark, not an arrow.
        TraceEvent {
            peer: None,
            ..receive(10, 1, 1, 2, &ack)
        },
        // A message to itself.
        receive(20, 2, 2, 2, &ack),
        // Nodes nobody listed, and a drop traced on arrival.
        receive(30, 7, 3, 8, &ack),
        TraceEvent {
            detail: "from n1: update_ack n1#1 (dropped: partitioned)".into(),
            ..timed(
                40,
                TraceEvent::link(2, 3, TraceKind::Drop, 1, &ack, String::new()),
            )
        },
        // A detail that would break a line, and a huge time.
        local(u64::MAX, 1, u64::MAX, TraceKind::Apply, None, "a\nb\tc"),
    ];
    odd.extend(sequencer_with_drop_and_faults());

    for nodes in [&[][..], &[1][..], &[3, 3, 2][..]] {
        for width in 0..=120 {
            for column_width in [0, 1, 3, 8, 40] {
                for sends in [false, true] {
                    let options = DiagramOptions {
                        width,
                        column_width,
                        sends,
                    };
                    let text = diagram(&odd, nodes, &options);
                    assert_well_formed(&text, width);
                    assert!(text.lines().count() > odd.len() / 2);
                }
            }
        }
    }
    assert_eq!(diagram(&[], &[], &DiagramOptions::default()), "");
    assert_eq!(
        diagram(&[], &[2, 1], &DiagramOptions::default()),
        "n2              n1\n"
    );

    let text = diagram(&odd, &[1, 2], &DiagramOptions::default());
    assert!(!text.contains("a\nb"), "a detail stays on its line");
    insta::assert_snapshot!(text);
}

#[test]
fn event_list_of_a_drop_and_faults() {
    let events = sequencer_with_drop_and_faults();
    let text = event_list(&events);
    assert_eq!(text.lines().count(), events.len());
    assert_well_formed(&text, 200);
    insta::assert_snapshot!(text);
}

#[test]
fn event_list_without_times_or_peers_leaves_those_columns_out() {
    let events = [
        TraceEvent {
            at_us: None,
            ..local(0, 1, 1, TraceKind::ClientRequest, None, "request 1: get x")
        },
        TraceEvent {
            at_us: None,
            ..local(0, 12, 10, TraceKind::ClientReply, None, "")
        },
    ];
    assert_eq!(
        event_list(&events),
        "n1    @1  request  request 1: get x\nn12  @10  reply\n"
    );
    assert_eq!(event_list(&[]), "");
}

#[test]
fn window_picks_a_time_range_and_keeps_the_latest() {
    let events = sequencer_with_drop_and_faults();
    let times = |w: &[TraceEvent]| w.iter().map(|e| e.at_us.unwrap_or(0)).collect::<Vec<_>>();
    // (from, to, max, times of the events picked)
    let cases: &[(u64, u64, usize, &[u64])] = &[
        (0, u64::MAX, 3, &[2_000, 2_500, 3_000]),
        (1_100, 1_200, 100, &[1_130, 1_130, 1_130, 1_130, 1_130]),
        (1_100, 1_200, 2, &[1_130, 1_130]),
        (1_131, 1_289, 100, &[]),
        (3_000, 3_000, 100, &[3_000]),
        (3_001, u64::MAX, 100, &[]),
        (2_000, 1_000, 100, &[]),
        (0, u64::MAX, 0, &[]),
    ];
    for &(from, to, max, want) in cases {
        assert_eq!(
            times(window(&events, from, to, max)),
            want,
            "{from}..={to} max {max}"
        );
    }
    // An untimed event goes with the timed event before it.
    let mut untimed = events.clone();
    untimed[4].at_us = None;
    assert_eq!(window(&untimed, 1_100, 1_200, 100).len(), 5);
    assert!(window(&[], 0, u64::MAX, 10).is_empty());
}

#[test]
fn json_lines_round_trip() {
    let mut events = broadcast_with_acks();
    events.extend(sequencer_with_drop_and_faults());
    events[0].at_us = None;
    let mut bytes = Vec::new();
    write_jsonl(&events, &mut bytes).expect("writing to memory");
    let text = String::from_utf8(bytes.clone()).expect("JSON is UTF-8");
    assert_eq!(text.lines().count(), events.len());
    // Blank lines are skipped on the way back.
    bytes.extend_from_slice(b"\n\n");
    assert_eq!(read_jsonl(&bytes[..]).expect("reading back"), events);
}

#[test]
fn json_lines_errors_name_the_line() {
    let mut bytes = Vec::new();
    write_jsonl(&broadcast_with_acks()[..2], &mut bytes).expect("writing to memory");
    bytes.extend_from_slice(b"{\"node\": 1}\n");
    let err = read_jsonl(&bytes[..]).expect_err("line 3 is not an event");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(err.to_string().starts_with("line 3, column "), "{err}");
}

fn arbitrary_event() -> impl Strategy<Value = TraceEvent> {
    let kind = prop_oneof![
        Just(TraceKind::ClientRequest),
        Just(TraceKind::ClientReply),
        Just(TraceKind::Send),
        Just(TraceKind::Receive),
        Just(TraceKind::Deliver),
        Just(TraceKind::Apply),
        Just(TraceKind::Drop),
        Just(TraceKind::Fault),
    ];
    (
        0u32..6,
        any::<u64>(),
        kind,
        proptest::option::of((0u32..6, 0u64..1000)),
        proptest::option::of(0u32..6),
        proptest::option::of("[a-z_]{0,12}"),
        "\\PC{0,40}",
        proptest::option::of(any::<u64>()),
    )
        .prop_map(
            |(node, lamport, kind, id, peer, message, detail, at_us)| TraceEvent {
                node,
                lamport,
                kind,
                msg_id: id.map(|(o, s)| MsgId::new(o, s)),
                peer,
                message,
                detail,
                at_us,
            },
        )
}

proptest! {
    #[test]
    fn any_trace_renders_within_the_width(
        events in proptest::collection::vec(arbitrary_event(), 0..20),
        nodes in proptest::collection::vec(0u32..8, 0..6),
        width in 0usize..140,
        column_width in 0usize..30,
        sends in any::<bool>(),
    ) {
        let options = DiagramOptions { width, column_width, sends };
        let text = diagram(&events, &nodes, &options);
        assert_well_formed(&text, width);
        let drawn = events.iter().filter(|e| sends || e.kind != TraceKind::Send).count();
        let header = usize::from(!nodes.is_empty() || !events.is_empty());
        prop_assert_eq!(text.matches('\n').count(), header + drawn);

        let list = event_list(&events);
        prop_assert_eq!(list.matches('\n').count(), events.len());
        for line in list.lines() {
            prop_assert_eq!(line, line.trim_end());
        }
    }
}

#[test]
fn a_capture_of_a_nodes_trace_command_reads_leniently() {
    let event = TraceEvent {
        node: 2,
        lamport: 4,
        kind: TraceKind::Apply,
        msg_id: None,
        peer: None,
        message: None,
        detail: "set x=1".into(),
        at_us: None,
    };
    let line = serde_json::to_string(&event).expect("serialises");
    let text = format!("OK tracing node 2: …\n{line}\n\n{{\"lost\":3}}\n{line}\n");
    let (events, skipped) = read_capture(&text);
    assert_eq!(events, vec![event.clone(), event]);
    assert_eq!(skipped, 2, "the greeting and the lost note");
}

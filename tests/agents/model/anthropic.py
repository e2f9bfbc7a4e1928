"""Anthropic Messages API (Claude Code): `POST /v1/messages`, SSE when `stream` is true."""

import itertools
import json

from core import text_of

_ids = itertools.count(1)


def handles(method, path):
    return method == "POST" and path.startswith("/v1/messages")


def tool_results(body):
    """The tool results in the messages after the last assistant message (Claude Code may add a
    message of its own after the one carrying them: a `system` nudge after a long turn)."""
    msgs = body.get("messages") or []
    tail = []
    for m in reversed(msgs):
        if m.get("role") == "assistant":
            break
        tail.insert(0, m)
    out = []
    for block in [b for m in tail if isinstance(m.get("content"), list) for b in m["content"]]:
        if block.get("type") == "tool_result":
            out.append({
                "id": block.get("tool_use_id"),
                "error": bool(block.get("is_error")),
                "output": text_of(block.get("content")),
            })
    return out


def blocks_of(turn):
    if "calls" in turn:
        return [{"type": "tool_use", "id": "toolu_%04d" % next(_ids), "name": c["name"],
                 "input": c["input"]} for c in turn["calls"]]
    return [{"type": "text", "text": turn.get("text", "done")}]


def answer(h, session, method, path, query, body):
    if path.startswith("/v1/messages/count_tokens"):
        return h.send_json({"input_tokens": 10})
    record = {"results": tool_results(body)}
    if not record["results"] and body.get("messages"):
        record["last"] = json.dumps(body["messages"][-2:])[:3000]  # what came instead
    if body.get("tools"):
        turn = h.state.next_turn(
            session, record, lambda: text_of([body.get("system"), body.get("messages")]),
            [t.get("name") for t in body["tools"]])
    else:
        h.state.side_request(session, record)
        turn = {"text": "ok"}
    blocks = blocks_of(turn)
    stop = "tool_use" if "calls" in turn else "end_turn"
    model = body.get("model", "scripted")
    usage = {"input_tokens": 10, "output_tokens": 10}
    if not body.get("stream"):
        return h.send_json({"id": "msg_%d" % next(_ids), "type": "message", "role": "assistant",
                            "model": model, "content": blocks, "stop_reason": stop,
                            "stop_sequence": None, "usage": usage})
    events = [("message_start", {"type": "message_start", "message": {
        "id": "msg_%d" % next(_ids), "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}})]
    for i, b in enumerate(blocks):
        if b["type"] == "tool_use":
            start = dict(b, input={})
            delta = {"type": "input_json_delta", "partial_json": json.dumps(b["input"])}
        else:
            start = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": b["text"]}
        events += [
            ("content_block_start", {"type": "content_block_start", "index": i,
                                     "content_block": start}),
            ("content_block_delta", {"type": "content_block_delta", "index": i, "delta": delta}),
            ("content_block_stop", {"type": "content_block_stop", "index": i}),
        ]
    events += [
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": stop, "stop_sequence": None},
                           "usage": {"output_tokens": 10}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return h.send_sse(events)


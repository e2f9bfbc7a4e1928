"""OpenAI Responses API (Codex, `wire_api = "responses"`): `POST /v1/responses`, SSE.

A scripted call whose input is a string is a freeform (custom) tool call, like Codex's
`apply_patch`; otherwise a function call with JSON arguments, in the call's `namespace` if it
names one (Codex offers an MCP server's tools as the namespace `mcp__<server>`)."""

import itertools
import json
import threading

from core import text_of

_ids = itertools.count(1)
_lock = threading.Lock()
_issued = {}  # session -> call ids of its last answer


def handles(method, path):
    return path.endswith("/responses") or path.endswith("/models")


def tool_results(session, body):
    with _lock:
        ids = _issued.get(session, [])
    outputs = {}
    for item in body.get("input") or []:
        if isinstance(item, dict) and item.get("type", "").endswith("_call_output"):
            outputs[item.get("call_id")] = item
    out = []
    for cid in ids:
        item = outputs.get(cid)
        if item is not None:
            out.append({"id": cid, "error": False, "output": text_of(item.get("output"))})
    return out


def items_of(session, turn):
    if "calls" not in turn:
        return [{"type": "message", "role": "assistant", "id": "msg_%d" % next(_ids),
                 "status": "completed",
                 "content": [{"type": "output_text", "text": turn.get("text", "done"),
                              "annotations": []}]}]
    items = []
    for c in turn["calls"]:
        n = next(_ids)
        if isinstance(c["input"], str):
            items.append({"type": "custom_tool_call", "id": "ctc_%d" % n, "status": "completed",
                          "call_id": "call_%d" % n, "name": c["name"], "input": c["input"]})
        else:
            item = {"type": "function_call", "id": "fc_%d" % n, "status": "completed",
                    "call_id": "call_%d" % n, "name": c["name"],
                    "arguments": json.dumps(c["input"])}
            if "namespace" in c:  # a tool of a namespace Codex offered (an MCP server's)
                item["namespace"] = c["namespace"]
            items.append(item)
    with _lock:
        _issued[session] = [i["call_id"] for i in items]
    return items


def answer(h, session, method, path, query, body):
    if path.endswith("/models"):
        return h.send_json({"object": "list", "data": [], "models": []})
    record = {"results": tool_results(session, body)}
    if body.get("tools"):
        turn = h.state.next_turn(
            session, record, lambda: text_of([body.get("instructions"), body.get("input")]),
            [t.get("name") for t in body["tools"]])
    else:
        h.state.side_request(session, record)
        turn = {"text": "ok"}
    rid = "resp_%d" % next(_ids)
    items = items_of(session, turn)
    events = [("response.created", {"type": "response.created",
                                    "response": {"id": rid, "status": "in_progress"}})]
    for i, item in enumerate(items):
        events.append(("response.output_item.done", {"type": "response.output_item.done",
                                                     "output_index": i, "item": item}))
    usage = {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 0},
             "output_tokens": 10, "output_tokens_details": {"reasoning_tokens": 0},
             "total_tokens": 20}
    events.append(("response.completed", {"type": "response.completed", "response": {
        "id": rid, "status": "completed", "output": items, "usage": usage}}))
    return h.send_sse(events)

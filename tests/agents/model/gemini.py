"""Gemini API (Gemini CLI): `POST /v1beta/models/M:streamGenerateContent?alt=sse` for each turn;
`:generateContent` and `:countTokens` for its side calls."""

from core import text_of


def handles(method, path):
    return method == "POST" and "/models/" in path


def tool_results(body):
    contents = body.get("contents") or []
    last = contents[-1] if contents else {}
    out = []
    for part in last.get("parts") or [] if last.get("role") == "user" else []:
        fr = part.get("functionResponse")
        if fr is not None:
            resp = fr.get("response") or {}
            out.append({"id": fr.get("id"), "name": fr.get("name"), "error": "error" in resp,
                        "output": text_of(resp)})
    return out


def parts_of(turn):
    if "calls" in turn:
        return [{"functionCall": {"name": c["name"], "args": c["input"]}} for c in turn["calls"]]
    return [{"text": turn.get("text", "done")}]


def candidate(parts):
    return {"candidates": [{"content": {"role": "model", "parts": parts},
                            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 10,
                              "totalTokenCount": 20}}


def answer(h, session, method, path, query, body):
    if path.endswith(":countTokens"):
        return h.send_json({"totalTokens": 10})
    tools = any(t.get("functionDeclarations") for t in body.get("tools") or [])
    record = {"results": tool_results(body)}
    if tools and path.endswith(":streamGenerateContent"):
        turn = h.state.next_turn(
            session, record,
            lambda: text_of([body.get("systemInstruction"), body.get("contents")]),
            [f.get("name") for t in body.get("tools") or [] for f in t.get("functionDeclarations")
             or []])
        return h.send_sse([(None, candidate(parts_of(turn)))])
    # side calls (routing, next-speaker checks) want JSON text: one object answers them all
    h.state.side_request(session, record)
    reply = candidate([{"text": '{"reasoning": "scripted", "next_speaker": "user", '
                                '"model_choice": "flash", "complexity_reasoning": "scripted", '
                                '"complexity_score": 1}'}])
    if path.endswith(":streamGenerateContent"):
        return h.send_sse([(None, reply)])
    return h.send_json(reply)

"""A small OpenAI-compatible HTTP server for tests: a local HF model really generates the answers.

It stands in for ``vllm serve`` / any OpenAI-compatible server, so that lm-eval's own
``local-completions`` and ``local-chat-completions`` clients can be run end to end on CPU:

* ``POST /v1/completions``: ``prompt`` is a string, a list of token ids, or a batch (a list of
  strings or of id lists); ids are decoded with the model's tokenizer (the decoded text is what
  is recorded). One choice per prompt, ``index`` = its position in the batch.
* ``POST /v1/chat/completions``: ``messages`` (and ``tools``, when given) are rendered with the
  model's own chat template (``add_generation_prompt=True``); one choice. With ``tools`` and a
  ``tool_choice`` other than ``"none"``, the reply is parsed the way vLLM's ``hermes`` tool
  parser does (``vllm serve --enable-auto-tool-choice --tool-call-parser hermes``, see
  :func:`hermes_tool_calls`): ``<tool_call>{json}</tool_call>`` blocks become ``tool_calls``.
  :attr:`OpenAIServer.reply` (``body -> text``, settable; None = generate) stands in for the
  model's text on chat requests, so a test can make the tiny random model "answer" with given
  tool calls; everything after the model (tool parsing, client, scoring) is then real.
* Anything else answers 404 (lm-eval's ``local-completions`` first probes ``/tokenizer_info``
  and ``/tokenize`` for a remote tokenizer; a 404 makes it fall back to a local tokenizer).

Generation is greedy, at most ``max_tokens`` (or ``max_completion_tokens``) new tokens, stops
at the model's EOS token, and the text is cut before the first ``stop`` string, as vLLM and
OpenAI do (``finish_reason`` "stop" or "length"). Every request is recorded in
:attr:`OpenAIServer.requests` (path, JSON body, the prompt texts the model saw and the answers),
so tests can assert on what the client sent.

    server = OpenAIServer(model_dir).start()   # 127.0.0.1, a free port
    server.url("/v1/chat/completions")
    server.stop()

``python tests/openai_server.py MODEL_DIR [--port N]`` serves a folder by hand.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable


class OpenAIServer:
    def __init__(self, model_dir: str | Path, host: str = "127.0.0.1", port: int = 0,
                 threads: int = 1, reply: Callable[[dict], str] | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_dir = str(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=torch.float32).eval()
        self.threads = threads  # torch threads while generating (kept small: tests share the CPU)
        self.requests: list[dict[str, Any]] = []
        self.reply = reply
        self._lock = threading.Lock()  # one generation at a time; guards self.requests too
        self._httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # ---- life cycle ----------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> "OpenAIServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                        name="openai-test-server")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def received(self, path: str | None = None) -> list[dict[str, Any]]:
        """The recorded requests (optionally only those to ``path``), in arrival order."""
        with self._lock:
            return [r for r in self.requests if path is None or r["path"] == path]

    # ---- generation ----------------------------------------------------------------------
    def generate(self, ids: list[int], max_tokens: int, stop: list[str]) -> tuple[str, str, int]:
        """Greedy continuation of ``ids``: (text cut at the first stop string, finish_reason,
        completion tokens)."""
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.no_grad():
                input_ids = torch.tensor([ids], dtype=torch.long)
                out = self.model.generate(input_ids, attention_mask=torch.ones_like(input_ids),
                                          max_new_tokens=max(1, int(max_tokens)), do_sample=False,
                                          pad_token_id=self.tokenizer.pad_token_id)
        finally:
            torch.set_num_threads(before)
        new = out[0, len(ids):].tolist()
        eos = self.tokenizer.eos_token_id
        hit_eos = eos is not None and eos in new
        if hit_eos:
            new = new[: new.index(eos)]
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        cuts = [text.index(s) for s in stop if s and s in text]
        if cuts:
            return text[: min(cuts)], "stop", len(new)
        return text, "stop" if hit_eos else "length", len(new)

    def _prompt(self, prompt: Any) -> tuple[str, list[int]]:
        if isinstance(prompt, str):
            return prompt, self.tokenizer(prompt, add_special_tokens=False).input_ids
        if isinstance(prompt, list) and all(isinstance(t, int) for t in prompt):
            return self.tokenizer.decode(prompt, skip_special_tokens=False), list(prompt)
        raise ValueError(f"a prompt must be a string or a list of token ids, not {type(prompt).__name__}")

    def complete(self, body: dict) -> tuple[dict, list[str], list[str]]:
        prompt = body.get("prompt")
        one_ids = isinstance(prompt, list) and bool(prompt) and all(isinstance(t, int) for t in prompt)
        if isinstance(prompt, str) or one_ids:
            batch = [prompt]
        elif isinstance(prompt, list) and prompt:
            batch = prompt
        else:
            raise ValueError("'prompt' must be a string, a list of token ids or a non-empty batch of them")
        if body.get("echo") or body.get("logprobs"):
            raise ValueError("echo/logprobs are not supported by this test server")
        max_tokens, stop = _limits(body)
        choices, texts, outputs, used_in, used_out = [], [], [], 0, 0
        for index, item in enumerate(batch):
            text, ids = self._prompt(item)
            out, reason, n_out = self.generate(ids, max_tokens, stop)
            choices.append({"index": index, "text": out, "logprobs": None, "finish_reason": reason})
            texts.append(text)
            outputs.append(out)
            used_in += len(ids)
            used_out += n_out
        return {"id": f"cmpl-{time.time_ns()}", "object": "text_completion", "created": int(time.time()),
                "model": body.get("model", self.model_dir), "choices": choices,
                "usage": _usage(used_in, used_out)}, texts, outputs

    def chat(self, body: dict) -> tuple[dict, list[str], list[str]]:
        messages = body.get("messages")
        if not (isinstance(messages, list) and messages and all(isinstance(m, dict) for m in messages)):
            raise ValueError("'messages' must be a non-empty list of {role, content} objects")
        tools = body.get("tools")
        if tools is not None and not (isinstance(tools, list) and all(isinstance(t, dict) for t in tools)):
            raise ValueError("'tools' must be a list of tool objects")
        kwargs = {"tools": tools} if tools else {}
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                                  **kwargs)
        ids = self.tokenizer(text, add_special_tokens=False).input_ids
        max_tokens, stop = _limits(body)
        if self.reply is not None:
            out, reason, n_out = self.reply(body), "stop", 0
        else:
            out, reason, n_out = self.generate(ids, max_tokens, stop)
        message: dict[str, Any] = {"role": "assistant", "content": out}
        if tools and body.get("tool_choice", "auto") != "none":
            calls, content = hermes_tool_calls(out)
            if calls:
                message = {"role": "assistant", "content": content, "tool_calls": calls}
                reason = "tool_calls"
        return {"id": f"chatcmpl-{time.time_ns()}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", self.model_dir),
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reason}],
                "usage": _usage(len(ids), n_out)}, [text], [out]

    def handle(self, method: str, path: str, body: Any) -> tuple[int, dict]:
        route = {"/v1/completions": self.complete, "/v1/chat/completions": self.chat}.get(path)
        record: dict[str, Any] = {"method": method, "path": path, "body": body}
        if method != "POST" or route is None:
            status, answer = 404, {"error": {"message": f"no route {method} {path}", "type": "not_found"}}
        elif not isinstance(body, dict):
            status = 400
            answer = {"error": {"message": "the body must be a JSON object", "type": "invalid_request"}}
        else:
            with self._lock:
                try:
                    answer, record["prompts"], record["outputs"] = route(body)
                    status = 200
                except ValueError as exc:
                    status, answer = 400, {"error": {"message": str(exc), "type": "invalid_request"}}
        record["status"] = status
        with self._lock:
            self.requests.append(record)
        return status, answer


_HERMES_CALL = re.compile(r"<tool_call>(.*?)</tool_call>|<tool_call>(.*)", re.DOTALL)


def hermes_tool_calls(text: str) -> tuple[list[dict], str | None]:
    """(tool_calls, content) of a reply, by the rules of vLLM's ``hermes`` tool parser.

    No ``<tool_call>`` in the text: no calls, the text is the content. Otherwise every
    ``<tool_call>...</tool_call>`` block (an unclosed last block runs to the end) must be a JSON
    object with ``name`` and ``arguments``; each becomes an OpenAI tool call whose arguments are
    re-serialised JSON text, and the content is the text before the first tag (None if empty).
    If any block fails to decode, there are no calls and the whole text is the content.
    """
    if "<tool_call>" not in text:
        return [], text
    try:
        raw = [json.loads(closed if closed else unclosed) for closed, unclosed in _HERMES_CALL.findall(text)]
        calls = [{"id": f"chatcmpl-tool-{uuid.uuid4().hex[:24]}", "type": "function",
                  "function": {"name": call["name"],
                               "arguments": json.dumps(call["arguments"], ensure_ascii=False)}}
                 for call in raw]
    except Exception:  # as vLLM: any decoding problem leaves the reply as plain text
        return [], text
    content = text[: text.find("<tool_call>")]
    return calls, content if content else None


def _limits(body: dict) -> tuple[int, list[str]]:
    max_tokens = body.get("max_tokens") or body.get("max_completion_tokens") or 16
    stop = body.get("stop") or []
    return int(max_tokens), [stop] if isinstance(stop, str) else [s for s in stop if isinstance(s, str)]


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def _handler_for(server: OpenAIServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except json.JSONDecodeError:
                body = raw.decode("utf-8", "replace")
            status, answer = server.handle(method, self.path.split("?", 1)[0], body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self._answer("POST")

        def do_GET(self) -> None:  # noqa: N802
            self._answer("GET")

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

    return Handler


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    srv = OpenAIServer(args.model_dir, port=args.port)
    print(f"serving {args.model_dir} at {srv.url('/v1')}", flush=True)
    try:
        srv._httpd.serve_forever()
    except KeyboardInterrupt:
        pass

"""A fake OpenAI-compatible chat server for tests of the LLM option: it answers each
``/v1/chat/completions`` request with the next of ``server.replies`` (a string, or a function of
the request body; once they run out, ``server.default``, "NO_ANSWER" unless set), records the
requests, and can be told to fail with ``server.fail_status``."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        srv.requests.append({"path": self.path, "body": body})
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._send(404, {"error": {"message": f"no route {self.path}"}})
        if srv.fail_status:
            return self._send(srv.fail_status, {"error": {"message": "boom", "type": "server_error"}})
        reply = srv.replies.pop(0) if srv.replies else srv.default
        content = reply(body) if callable(reply) else reply
        self._send(200, {
            "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": body.get("model", "m"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

    def _send(self, status: int, obj: dict) -> None:
        data = json.dumps(obj, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


def render_each_quote(body: dict) -> str:
    """A reply by what is asked: to a rendering request, "The minister spoke." for each of its
    ``<quote n=…>``; to anything else (an answer request), NO_ANSWER."""
    quotes = body["messages"][1]["content"].count("<quote n=")
    return "\n".join(f"[{n}] The minister spoke." for n in range(1, quotes + 1)) or "NO_ANSWER"


@contextmanager
def fake_openai_server() -> Iterator[ThreadingHTTPServer]:
    """The server on a free local port; ``server.url`` is its OPENAI_BASE_URL."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.requests, srv.replies, srv.default, srv.fail_status = [], [], "NO_ANSWER", 0
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/v1"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()

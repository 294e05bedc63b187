"""HTTP servers for tests: uvicorn in a thread, and a WeCom group-robot emulator."""

from __future__ import annotations

import threading
import time

import uvicorn
from fastapi import FastAPI, Request

from hazmon.devservers import free_port


class Uvicorn:
    """uvicorn serving one app in a thread on a free loopback port."""

    def __init__(self, app: FastAPI):
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(5)


class FakeWecomRobot:
    """POST /cgi-bin/webhook/send?key=...: records each post, answers ok or the configured errcode."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict]] = []
        self.errcode = 0
        self.app = FastAPI()
        self._lock = threading.Lock()

        @self.app.post("/cgi-bin/webhook/send")
        async def send(request: Request) -> dict:
            with self._lock:
                self.posts.append((request.query_params.get("key", ""), await request.json()))
            if self.errcode == 45009:
                return {"errcode": 45009, "errmsg": "api freq out of limit"}
            return {"errcode": 0, "errmsg": "ok"}

    def contents(self) -> list[str]:
        with self._lock:
            return [body["text"]["content"] for _, body in self.posts]

"""A client load loop for the end-to-end tests and benchmarks: real openai-SDK
chat completions (non-streaming) through the public endpoint until stopped,
counting outcomes. `max_retries` is the SDK's own retry count: 2 is what
clients get by default, 0 counts every failed attempt."""
import threading
import time

import httpx
import openai


class ChatLoad(threading.Thread):
    def __init__(self, gateway, token, model, max_retries=2, rps=5, limit_seconds=900):
        super().__init__(daemon=True)
        self.gateway, self.token, self.model = gateway, token, model
        self.max_retries, self.rps, self.limit_seconds = max_retries, rps, limit_seconds
        self.stop = threading.Event()
        self.ok = 0
        self.failed = []  # (monotonic time, what)

    def run(self):
        http = httpx.Client(verify=self.gateway.ssl_context(), timeout=60)
        client = openai.OpenAI(base_url=self.gateway.base_url, api_key=self.token,
                               http_client=http, max_retries=self.max_retries)
        deadline = time.monotonic() + self.limit_seconds  # bounded even if never stopped
        try:
            while not self.stop.is_set() and time.monotonic() < deadline:
                try:
                    r = client.chat.completions.create(
                        model=self.model, max_tokens=4,
                        messages=[{"role": "user", "content": "Reply with OK."}])
                    if r.choices and r.choices[0].message.content:
                        self.ok += 1
                    else:
                        self.failed.append((time.monotonic(), "empty answer"))
                except openai.APIError as exc:
                    self.failed.append((time.monotonic(), f"{type(exc).__name__}: {str(exc)[:120]}"))
                self.stop.wait(1 / self.rps)
        finally:
            http.close()

    def finish(self):
        self.stop.set()
        self.join(timeout=120)
        return self

    def window(self):
        """Seconds from the first to the last failure (0 with none)."""
        return self.failed[-1][0] - self.failed[0][0] if self.failed else 0.0

    def summary(self):
        errors = sorted({what for _, what in self.failed})[:3]
        return (f"{self.ok} ok, {len(self.failed)} failed (max_retries={self.max_retries}, "
                f"failure window {self.window():.1f} s)" + (f": {'; '.join(errors)}" if errors else ""))

"""The dashboard's browser view in a bare Chromium page, wired to a real kernel-side widget.

No Jupyter here: the page loads ``_widget.js`` and ``_widget.css`` as the Dashboard ships
them and renders the view on a small stand-in for the anywidget model (get, set,
save_changes, on, off, send, and custom messages). The test holds both ends of the comm, so it decides when the
kernel hears the browser and when the browser hears the kernel: a busy kernel is simply
one whose messages are not delivered yet.
"""

from __future__ import annotations

import base64
from typing import Any

import comm
from comm.base_comm import BaseComm
from ipywidgets.widgets.widget import _remove_buffers

from fedlab.dashboard import Dashboard

ORIGIN = "http://fedlab.view"

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><link rel="stylesheet" href="/widget.css"></head>
<body><div id="root"></div></body></html>"""

#: A stand-in for the model anywidget gives ``render``: change events fire after a whole
#: kernel update is applied (as in Backbone); buffers arrive as DataViews (as in ipywidgets 8).
BOOT = """async ({ message }) => {
    const attrs = {}, listeners = {};
    let dirty = new Set();
    window.toKernel = [];
    window.fromKernel = ({ state, buffer_paths, buffers }) => {
        const incoming = { ...state };
        buffer_paths.forEach(([name], k) => {
            const bytes = Uint8Array.from(atob(buffers[k]), (c) => c.charCodeAt(0));
            incoming[name] = new DataView(bytes.buffer);
        });
        Object.assign(attrs, incoming);
        for (const name of Object.keys(incoming)) (listeners[`change:${name}`] || []).forEach((f) => f());
    };
    window.customFromKernel = ({ content, buffers }) => {
        const views = buffers.map((b) => new DataView(Uint8Array.from(atob(b), (c) => c.charCodeAt(0)).buffer));
        (listeners["msg:custom"] || []).forEach((f) => f(content, views));
    };
    const model = {
        get: (name) => attrs[name],
        set: (name, value) => {
            attrs[name] = value;
            dirty.add(name);
            (listeners[`change:${name}`] || []).forEach((f) => f());
        },
        save_changes: () => {
            window.toKernel.push(Object.fromEntries([...dirty].map((name) => [name, attrs[name]])));
            dirty = new Set();
        },
        send: (content) => window.toKernel.push({ custom: content }),
        on: (event, f) => { (listeners[event] ||= []).push(f); },
        off: (event, f) => { listeners[event] = (listeners[event] || []).filter((g) => g !== f); },
    };
    window.fromKernel(message);
    const widget = (await import("/widget.js")).default;
    widget.render({ model, el: document.getElementById("root") });
}"""


class RecordingComm(BaseComm):
    """Keeps what the widget sends, for the page to receive when the test says so."""

    def __init__(self, **kwargs: Any) -> None:
        self.outbox: list[dict[str, Any]] = []
        super().__init__(**kwargs)

    def publish_msg(
        self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **keys: Any
    ) -> None:
        if msg_type == "comm_msg" and data.get("method") in ("update", "custom"):
            self.outbox.append({**data, "buffers": list(buffers or [])})
        # echo_update is left out: the browser already holds the value it sent.


def _message(state: dict[str, Any], paths: list[list[str]], buffers: list[Any]) -> dict[str, Any]:
    encoded = [base64.b64encode(bytes(b)).decode("ascii") for b in buffers]
    return {"state": state, "buffer_paths": paths, "buffers": encoded}


class ViewPage:
    """One dashboard view in ``page``, fed by ``view`` (a Dashboard made on a RecordingComm)."""

    def __init__(self, page: Any, view: Dashboard) -> None:
        self.page, self.view = page, view
        self.comm: RecordingComm = view.comm
        page.route(f"{ORIGIN}/", lambda route: route.fulfill(body=PAGE, content_type="text/html"))
        page.route(f"{ORIGIN}/widget.js", lambda route: route.fulfill(body=view._esm, content_type="text/javascript"))
        page.route(f"{ORIGIN}/widget.css", lambda route: route.fulfill(body=view._css, content_type="text/css"))
        page.goto(f"{ORIGIN}/")
        self.comm.outbox.clear()  # the full state below includes all of it
        state, paths, buffers = _remove_buffers(view.get_state())
        page.evaluate(BOOT, {"message": _message(state, paths, buffers)})

    def deliver_to_browser(self) -> int:
        """Hand the page every update the kernel sent since the last call; how many."""
        sent = self.comm.outbox[:]
        self.comm.outbox.clear()
        for data in sent:
            if data["method"] == "custom":  # a delta: content plus buffers
                encoded = [base64.b64encode(bytes(b)).decode("ascii") for b in data["buffers"]]
                self.page.evaluate(
                    "(message) => window.customFromKernel(message)",
                    {"content": data["content"], "buffers": encoded},
                )
                continue
            self.page.evaluate(
                "(message) => window.fromKernel(message)",
                _message(data["state"], data["buffer_paths"], data["buffers"]),
            )
        return len(sent)

    def drop_next(self, count: int) -> None:
        """Lose the first ``count`` messages the kernel sent since the last delivery."""
        del self.comm.outbox[:count]

    def deliver_to_kernel(self) -> int:
        """Hand the kernel every change the page saved since the last call; how many."""
        changes: list[dict[str, Any]] = self.page.evaluate("() => window.toKernel.splice(0)")
        for state in changes:
            data = {"method": "custom", "content": state["custom"]} if "custom" in state else {
                "method": "update", "state": state, "buffer_paths": []}
            self.view._handle_msg({"content": {"data": data}, "buffers": []})
        return len(changes)


def install_recording_comm(monkeypatch: Any) -> None:
    """Make widgets created from now on open a RecordingComm (no kernel needed)."""
    monkeypatch.setattr(comm, "create_comm", lambda **kwargs: RecordingComm(**kwargs))

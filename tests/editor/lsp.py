"""A minimal LSP client over stdio, enough to drive yaml-language-server as an editor does.

Every wait is bounded; ``close()`` kills the server.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CI_PREFIX = REPO / ".ci"
TIMEOUT = 30.0  # seconds for any one answer; the server answers in well under one


def node() -> str | None:
    return shutil.which("node")


def server_script() -> Path | None:
    """yaml-language-server's entry point: $LUMOZBATCH_YAML_LS, .ci/node_modules, or PATH."""
    explicit = os.environ.get("LUMOZBATCH_YAML_LS")
    if explicit:
        return Path(explicit)
    local = CI_PREFIX / "node_modules" / "yaml-language-server" / "bin" / "yaml-language-server"
    if local.is_file():
        return local
    found = shutil.which("yaml-language-server")
    return Path(found).resolve() if found else None


def install_server() -> Path | None:
    """``npm ci`` the pinned server into .ci/node_modules (as .ci/run does); None if that fails."""
    npm = shutil.which("npm")
    if npm is None:
        return None
    subprocess.run([npm, "ci", "--prefix", str(CI_PREFIX), "--no-audit", "--no-fund"], capture_output=True, timeout=300)
    return server_script()


SETTINGS: dict[str, Any] = {
    "yaml": {
        "validate": True,
        "hover": True,
        "completion": True,
        "format": {"enable": False},
        "schemaStore": {"enable": False},  # no network: only the modeline's schema
        "schemas": {},
        "yamlVersion": "1.2",
    }
}


class LanguageServer:
    def __init__(self, script: Path, root: Path) -> None:
        node_bin = node()
        assert node_bin is not None
        self.proc = subprocess.Popen(
            [node_bin, str(script), "--stdio"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._next_id = 0
        self._answers: dict[int, queue.Queue[dict[str, Any]]] = {}
        self._diagnostics: dict[str, list[dict[str, Any]]] = {}
        self._versions: dict[str, int] = {}
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()
        self.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": root.as_uri(),
                "capabilities": {
                    "workspace": {"configuration": True, "didChangeConfiguration": {"dynamicRegistration": True}},
                    "textDocument": {
                        "publishDiagnostics": {"versionSupport": True},
                        "completion": {"completionItem": {"snippetSupport": True, "documentationFormat": ["markdown", "plaintext"]}},
                        "hover": {"contentFormat": ["markdown", "plaintext"]},
                    },
                },
                "workspaceFolders": [{"uri": root.as_uri(), "name": root.name}],
            },
        )
        self.notify("initialized", {})
        self.notify("workspace/didChangeConfiguration", {"settings": SETTINGS})

    # -- wire ---------------------------------------------------------------------------
    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def _read_loop(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            if length is None:
                continue
            self._dispatch(json.loads(out.read(length)))

    def _dispatch(self, msg: dict[str, Any]) -> None:
        if "id" in msg and "method" in msg:  # a request from the server
            if msg["method"] == "workspace/configuration":
                items = msg["params"]["items"]
                result: Any = [SETTINGS["yaml"] if i.get("section") == "yaml" else None for i in items]
            else:
                result = None
            self._send({"id": msg["id"], "result": result})
        elif "id" in msg:
            self._answers.setdefault(msg["id"], queue.Queue()).put(msg)
        elif msg.get("method") == "textDocument/publishDiagnostics":
            params = msg["params"]
            with self._cond:
                # with versionSupport, an answer for an older text of the document is stale
                if params.get("version") in (None, self._versions.get(params["uri"])):
                    self._diagnostics[params["uri"]] = params["diagnostics"]
                    self._cond.notify_all()

    def request(self, method: str, params: dict[str, Any]) -> Any:
        self._next_id += 1
        rid = self._next_id
        box = self._answers.setdefault(rid, queue.Queue())
        self._send({"id": rid, "method": method, "params": params})
        answer = box.get(timeout=TIMEOUT)
        del self._answers[rid]
        assert "error" not in answer, answer
        return answer["result"]

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self._send({"method": method, "params": params})

    # -- documents ------------------------------------------------------------------------
    def open(self, path: Path, text: str | None = None) -> str:
        """Open (or replace the text of) a document; returns its URI. Diagnostics follow."""
        uri = path.resolve().as_uri()
        text = path.read_text(encoding="utf-8") if text is None else text
        with self._cond:
            self._diagnostics.pop(uri, None)
            self._versions[uri] = self._versions.get(uri, 0) + 1
        if self._versions[uri] > 1:
            self.notify(
                "textDocument/didChange",
                {"textDocument": {"uri": uri, "version": self._versions[uri]}, "contentChanges": [{"text": text}]},
            )
        else:
            self.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "yaml", "version": 1, "text": text}})
        return uri

    def diagnostics(self, uri: str) -> list[dict[str, Any]]:
        """The diagnostics published for the document's latest text (waits for them)."""
        deadline = time.monotonic() + TIMEOUT
        with self._cond:
            while uri not in self._diagnostics:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no diagnostics for {uri} within {TIMEOUT}s")
                self._cond.wait(left)
            return self._diagnostics[uri]

    def completion(self, uri: str, line: int, character: int) -> list[dict[str, Any]]:
        result = self.request("textDocument/completion", {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}})
        items: list[dict[str, Any]] = result["items"] if isinstance(result, dict) else (result or [])
        return items

    def hover(self, uri: str, line: int, character: int) -> str:
        result = self.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}})
        if not result:
            return ""
        contents = result["contents"]
        return contents["value"] if isinstance(contents, dict) else str(contents)

    def close(self) -> None:
        try:
            self.request("shutdown", {})
            self.notify("exit", {})
            self.proc.wait(timeout=5)
        except Exception:
            pass
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=5)

"""A loopback Hugging Face Hub that speaks what the real ``huggingface_hub`` client uses.

Downloads (resolve HEAD/GET with ETag, X-Repo-Commit, Content-Length, Range; revision and tree
listing for ``snapshot_download``), uploads (create repo, create branch, validate-yaml, preupload
answering "regular", NDJSON commit) and Hub-style errors (``X-Error-Code``), following
``shared/notes/hub_protocol.md``. Repos are in memory: ``{repo_id: {"commits": {sha: files},
"refs": {branch_or_tag: sha}}}``; every commit gets a fresh sha and old commits stay readable.

Fault injection: ``hub.faults`` maps a path substring to a list of actions consumed one per matching
request: ``"500"`` / ``"501"`` (status; downloads, revision lookups and every POST of an upload), ``"rst"``
(connection reset), ``"short"`` (body cut short).
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

__all__ = ["FakeHub"]


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class _Repo:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)


class FakeHub:
    """Start with ``with FakeHub() as hub:``; ``hub.url`` is the endpoint for ``HF_ENDPOINT``."""

    def __init__(self) -> None:
        self.repos: dict[str, _Repo] = {}
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, headers)
        self.faults: dict[str, list[str]] = {}
        self._counter = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- repository state -------------------------------------------------------------------------
    def _new_sha(self) -> str:
        with self._lock:
            self._counter += 1
            return hashlib.sha1(f"commit-{self._counter}-{id(self)}".encode()).hexdigest()

    def commit(self, repo_id: str, files: dict[str, bytes], *, branch: str = "main",
               delete: list[str] | tuple = ()) -> str:
        """Add a commit on ``branch`` with ``files`` added/replaced and ``delete`` removed."""
        repo = self.repos.setdefault(repo_id, _Repo())
        parent = repo.commits.get(repo.refs.get(branch, ""), {})
        tree = {p: b for p, b in parent.items() if p not in delete and not any(p.startswith(d) for d in delete if d.endswith("/"))}
        tree.update(files)
        sha = self._new_sha()
        repo.commits[sha] = tree
        repo.refs[branch] = sha
        return sha

    def tag(self, repo_id: str, tag: str, sha: str) -> None:
        self.repos[repo_id].refs[tag] = sha

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        repo = self.repos[repo_id]
        return repo.commits[repo.refs.get(revision, revision)]

    def _resolve(self, repo_id: str, rev: str) -> tuple[str | None, dict | None, str | None]:
        """(sha, tree, error code) for a repo revision."""
        repo = self.repos.get(repo_id)
        if repo is None:
            return None, None, "RepoNotFound"
        sha = repo.refs.get(rev, rev if rev in repo.commits else None)
        if sha is None:
            return None, None, "RevisionNotFound"
        return sha, repo.commits[sha], None

    # -- HTTP ---------------------------------------------------------------------------------------
    def _handler_class(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def _fault(self) -> str | None:
                for key, actions in hub.faults.items():
                    if key in self.path and actions:
                        return actions.pop(0)
                return None

            def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _json(self, status: int, payload, headers: dict | None = None, head: bool = False):
                self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})}, head)

            def _error(self, status: int, code: str | None, message: str, head: bool = False, extra: dict | None = None):
                headers = {"X-Error-Message": message, **(extra or {})}
                if code:
                    headers["X-Error-Code"] = code
                self._json(status, {"error": message}, headers, head)

            def _segments(self) -> list[str]:
                return [unquote(s) for s in urlsplit(self.path).path.split("/")[1:]]

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _record(self, method: str):
                hub.requests.append((method, self.path, dict(self.headers)))

            # resolve: /datasets/{org}/{name}/resolve/{rev}/{path...}
            def _resolve_file(self, head: bool):
                seg = self._segments()
                if len(seg) < 6 or seg[0] != "datasets" or seg[3] != "resolve":
                    return self._error(404, None, "not found", head)
                repo_id, rev, path = f"{seg[1]}/{seg[2]}", seg[4], "/".join(seg[5:])
                fault = self._fault()
                if fault and fault.isdigit():
                    return self._error(int(fault), None, f"injected {fault}", head)
                sha, tree, err = hub._resolve(repo_id, rev)
                if err:
                    return self._error(404, err, f"{err}: {repo_id}@{rev}", head)
                if path not in tree:
                    return self._error(404, "EntryNotFound", f"{path} not in {repo_id}@{rev}", head, {"X-Repo-Commit": sha})
                data = tree[path]
                headers = {"X-Repo-Commit": sha, "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}
                if head:
                    return self._send(200, data, headers, head=True)
                if fault == "rst":
                    self.send_response(200)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return None
                if fault == "short":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.close_connection = True
                    return None
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0])
                    part = data[start:]
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                    return self._send(206, part, headers)
                return self._send(200, data, headers)

            def do_HEAD(self):
                self._record("HEAD")
                self._resolve_file(head=True)

            def do_GET(self):
                self._record("GET")
                seg = self._segments()
                if seg[:1] == ["api"] and len(seg) >= 4 and seg[1] == "datasets":
                    repo_id = f"{seg[2]}/{seg[3]}"
                    if len(seg) == 4:  # dataset_info
                        return self._revision(repo_id, "main")
                    if seg[4] == "revision":
                        return self._revision(repo_id, "/".join(seg[5:]))
                    if seg[4] == "tree":
                        return self._tree(repo_id, seg[5])
                if seg[:1] == ["datasets"]:
                    return self._resolve_file(head=False)
                return self._error(404, None, "not found")

            def _revision(self, repo_id: str, rev: str):
                fault = self._fault()
                if fault and fault.isdigit():
                    return self._error(int(fault), None, f"injected {fault}")
                sha, tree, err = hub._resolve(repo_id, rev)
                if err:
                    return self._error(404, err, f"{err}: {repo_id}@{rev}")
                siblings = [{"rfilename": p} for p in sorted(tree)]
                return self._json(200, {"id": repo_id, "sha": sha, "siblings": siblings})

            def _tree(self, repo_id: str, rev: str):
                sha, tree, err = hub._resolve(repo_id, rev)
                if err:
                    return self._error(404, err, f"{err}: {repo_id}@{rev}")
                entries = [{"type": "file", "path": p, "oid": _git_blob_sha1(b), "size": len(b)} for p, b in sorted(tree.items())]
                return self._json(200, entries)

            def do_POST(self):
                self._record("POST")
                seg = self._segments()
                body = self._body()
                fault = self._fault()
                if fault and fault.isdigit():
                    return self._error(int(fault), None, f"injected {fault}")
                if seg == ["api", "repos", "create"]:
                    req = json.loads(body)
                    repo_id = f"{req['organization']}/{req['name']}" if req.get("organization") else req["name"]
                    url = {"url": f"{hub.url}/datasets/{repo_id}"}
                    if repo_id in hub.repos:
                        return self._json(409, {**url, "error": "You already created this dataset repo"})
                    hub.repos[repo_id] = _Repo()
                    hub.commit(repo_id, {})
                    return self._json(200, url)
                if seg == ["api", "validate-yaml"]:
                    return self._json(200, {"errors": [], "warnings": []})
                if len(seg) >= 6 and seg[:2] == ["api", "datasets"] and seg[4] == "branch":
                    return self._branch(f"{seg[2]}/{seg[3]}", "/".join(seg[5:]), body)
                if len(seg) >= 6 and seg[:2] == ["api", "datasets"] and seg[4] in ("preupload", "commit"):
                    repo_id, rev = f"{seg[2]}/{seg[3]}", seg[5]
                    if repo_id not in hub.repos:
                        return self._error(404, "RepoNotFound", f"Repository not found: {repo_id}")
                    if seg[4] == "preupload":
                        files = json.loads(body)["files"]
                        return self._json(200, {"files": [
                            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]})
                    return self._commit(repo_id, rev, body)
                return self._error(404, None, "not found")

            def _branch(self, repo_id: str, branch: str, body: bytes):
                """create_branch: the new branch points at ``startingPoint`` (default: main's head)."""
                repo = hub.repos.get(repo_id)
                if repo is None:
                    return self._error(404, "RepoNotFound", f"Repository not found: {repo_id}")
                if branch in repo.refs:
                    return self._error(409, None, f"Reference already exists: refs/heads/{branch}")
                start = (json.loads(body) if body else {}).get("startingPoint") or "main"
                sha = repo.refs.get(start, start if start in repo.commits else None)
                if sha is None:
                    return self._error(400, None, f"Invalid rev id: {start}")
                repo.refs[branch] = sha
                return self._json(200, {})

            def _commit(self, repo_id: str, rev: str, body: bytes):
                if rev not in hub.repos[repo_id].refs:  # as the Hub: commits go to existing branches only
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
                added: dict[str, bytes] = {}
                deleted: list[str] = []
                for line in body.decode().splitlines():
                    if not line.strip():
                        continue
                    item = json.loads(line)
                    if item["key"] == "file":
                        added[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    elif item["key"] in ("deletedFile", "deletedFolder"):
                        deleted.append(item["value"]["path"])
                    elif item["key"] == "lfsFile":
                        return self._error(400, None, "this fake hub only accepts regular uploads")
                sha = hub.commit(repo_id, added, branch=rev, delete=deleted)
                return self._json(200, {"commitOid": sha, "commitUrl": f"{hub.url}/datasets/{repo_id}/commit/{sha}"})

        return Handler

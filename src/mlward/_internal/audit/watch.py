"""``mlward watch``: record changes to a project's files in the ledger as they happen.

The ``watchfiles`` library reports file system events (inotify, FSEvents, ...), debounced:
a burst of writes to one file becomes one change. Each batch becomes ledger entries
(``watch.added``, ``watch.modified``, ``watch.renamed``, ``watch.removed``) carrying the file's
SHA-256 and the one it replaced, in one append; a rename is a removal and an addition of the
same content in one batch. A new or changed model file is scanned at once (nothing is ever
loaded or run) and the verdict recorded as a ``scan`` entry. Paths a scan leaves out (``.git``,
virtual environments, ``.mlward``, ignore files, excludes) are not recorded.

The digests the watcher starts from are those of the latest audit snapshot, so the first
change to a file already names the content it replaced.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from mlward._internal import logs
from mlward._internal.audit.snapshot import classify
from mlward.errors import MlwardError
from mlward.settings import Settings

log = logs.get("mlward.watch")


class Watcher:
    """Watch ``root``; :meth:`run` until ``stop`` is set (or Ctrl-C). ``on_record`` gets one
    line per entry appended; ``ready`` is set once the watch is in place."""

    def __init__(self, root: Path, settings: Settings, *, debounce_ms: int = 300,
                 scan: bool = True, on_record: Callable[[str], None] | None = None,
                 stop: threading.Event | None = None,
                 ready: threading.Event | None = None) -> None:
        from mlward._internal.walk import Walk

        self.root = root.resolve()
        self.settings = settings
        self.debounce_ms = debounce_ms
        self.scan = scan
        self.on_record = on_record or (lambda line: None)
        self.stop = stop
        self.ready = ready
        self.walk = Walk(self.root, exclude=settings.exclude,
                         ignore_files=settings.ignore_files,
                         follow_symlinks=settings.follow_symlinks)
        self.known: dict[str, str] = self._last_snapshot()

    def _last_snapshot(self) -> dict[str, str]:
        """path -> ``sha256:hex`` from the latest snapshot (empty when there is none)."""
        from mlward._internal.audit.errors import AuditError
        from mlward._internal.audit.record import recorded, snapshot_folder
        from mlward._internal.audit.snapshot import Snapshot
        from mlward._internal.ledger import find_project, open_ledger

        folder = find_project(self.root)
        if folder is None:
            return {}
        with open_ledger(self.settings.db, folder.parent) as ledger:
            history = recorded(ledger)
        if not history:
            return {}
        try:
            doc = Snapshot.load(snapshot_folder(folder), history[-1].id)
        except AuditError:
            return {}
        return {str(self.root / f.path): ref for f in doc.files
                if (ref := f.digest_ref) is not None}

    def run(self) -> None:
        import watchfiles

        for changes in watchfiles.watch(self.root, watch_filter=self._wanted,
                                        debounce=self.debounce_ms, step=20,
                                        stop_event=self.stop, rust_timeout=200,
                                        yield_on_timeout=True):
            if self.ready is not None:
                self.ready.set()
            if not changes:
                continue
            try:
                self.handle((change.name, path) for change, path in changes)
            except MlwardError as exc:  # a locked or unreachable ledger: say so, keep watching
                log.warning("changes not recorded: %s", exc.diagnostics())

    def _wanted(self, change: Any, path: str) -> bool:
        return self.walk.left_out(path) is None

    def handle(self, changes: Iterable[tuple[str, str]]) -> None:
        """Record one batch of ``(added|modified|deleted, path)``."""
        from mlward._internal.ledger import Event, find_project, open_ledger
        from mlward._internal.ledger.refs import here

        where = here()
        events: list[Event] = []
        lines: list[str] = []
        removed: dict[str, str | None] = {}
        present: dict[str, str] = {}
        for kind, path in sorted(set(changes)):
            if kind == "deleted" and not os.path.lexists(path):
                removed[path] = self.known.pop(path, None)
            elif kind != "deleted" and Path(path).is_file() and not Path(path).is_symlink():
                digest = self._digest(path)
                if digest is not None and digest != self.known.get(path):
                    present[path] = digest
        by_digest = {d: p for p, d in removed.items() if d is not None}
        for path, digest in sorted(present.items()):
            old_path = by_digest.pop(digest, None) if path not in self.known else None
            if old_path is not None:
                removed.pop(old_path, None)
                events.append(self._event("watch.renamed", path, digest, where,
                                          {"from": old_path}))
            else:
                action = "watch.modified" if path in self.known else "watch.added"
                previous = self.known.get(path)
                events.append(self._event(action, path, digest, where,
                                          {"previous": previous} if previous else {}))
            self.known[path] = digest
        for path, digest in sorted(removed.items()):
            events.append(self._event("watch.removed", path, digest, where, {}))
        if self.scan:
            events += [e for path, digest in sorted(present.items())
                       if classify(os.path.relpath(path, self.root)) == "model"
                       and (e := self._scan(path, digest, where)) is not None]
        if not events:
            return
        folder = find_project(self.root)
        with open_ledger(self.settings.db, folder.parent if folder else None) as ledger:
            entries = ledger.append(events)
        for e in entries:
            ev = e.event
            rel = os.path.relpath(ev.resource.removeprefix("file://"), self.root)
            digest = next(iter(ev.digests.values()), "")[:16]
            lines.append(f"{ev.time[:19]}Z {ev.action:<15} {rel} {digest} {ev.outcome} "
                         f"(entry {e.index})")
        for line in lines:
            self.on_record(line)

    def _digest(self, path: str) -> str | None:
        from mlward._internal.provenance.errors import ProvenanceError
        from mlward._internal.provenance.hashing import file_digest

        try:
            return f"sha256:{file_digest(Path(path))}"
        except ProvenanceError as exc:  # gone again, or still being written: a later event
            log.info("%s: not recorded yet: %s", path, exc)
            return None

    def _event(self, action: str, path: str, digest: str | None, where: dict[str, Any],
               details: dict[str, Any]) -> Any:
        from mlward._internal.ledger import Event

        alg, _, value = (digest or "").partition(":")
        return Event(action=action, resource=Path(path).as_uri(),
                     outcome="removed" if action == "watch.removed" else "ok",
                     digests={alg: value} if digest else {},
                     details={"where": where, **details})

    def _scan(self, path: str, digest: str, where: dict[str, Any]) -> Any:
        from mlward._internal.ledger import Event
        from mlward._internal.pipeline import scan

        report = scan([path], settings=self.settings._replace(executor="thread", root=None))
        verdicts = {k: str(v) for k, v in report.verdicts().items()}
        code = report.exit_code(self.settings.fail_on)
        alg, _, value = digest.partition(":")
        return Event(action="scan", resource=Path(path).as_uri(),
                     outcome={0: "pass", 1: "fail"}.get(code, "inconclusive"),
                     digests={alg: value},
                     details={"where": where, "trigger": "watch", "exit_code": code,
                              "verdicts": verdicts, "findings": report.counts(),
                              "fingerprints": sorted({f.fingerprint for f in report.counted})})

"""One lock file per sweep point, so that a point never runs twice at the same time.

The lock is a file created with ``O_CREAT | O_EXCL`` (atomic on local file systems and on
NFSv3 and later) holding the owner's host, pid and start time. While the point runs, a thread
touches it every :data:`HEARTBEAT_S` seconds. A lock is *stale*, and may be broken, when its
owner is on this host and its process is gone, or when it has not been touched for
:data:`STALE_AFTER_S` seconds (an owner on another host that died). Breaking goes through a
second ``O_EXCL`` file, so two processes that find the same stale lock do not both take it.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PointLock", "LockHeld", "HEARTBEAT_S", "STALE_AFTER_S", "lock_owner", "is_stale"]

#: Seconds between two touches of a held lock.
HEARTBEAT_S = 20.0
#: A lock untouched this long is stale wherever its owner runs.
STALE_AFTER_S = 300.0
#: A break file older than this was left by a process that died while breaking a lock.
_BREAK_STALE_S = 60.0


class LockHeld(RuntimeError):
    """The point is locked by a live owner (``owner``: its host, pid and start time)."""

    def __init__(self, path: Path, owner: dict):
        self.path, self.owner = path, owner
        super().__init__(f"{path}: held by pid {owner.get('pid')} on {owner.get('host')}")


def lock_owner(path: Path) -> dict | None:
    """The owner written in the lock file ``path`` ({} if unreadable), None without a lock."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        owner = json.loads(text)
    except json.JSONDecodeError:     # caught between create and write
        return {}
    return owner if isinstance(owner, dict) else {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:          # someone else's live process
        return True
    return True


def is_stale(path: Path, owner: dict | None, *, stale_after: float = STALE_AFTER_S) -> bool:
    """Whether the lock ``path`` with ``owner`` may be broken (see the module text)."""
    try:
        age = time.time() - Path(path).stat().st_mtime
    except FileNotFoundError:
        return True
    if age > stale_after:
        return True
    if owner and owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int):
        return not _alive(owner["pid"])
    return False


@dataclass
class PointLock:
    """The lock of one point folder: ``with PointLock(folder): ...`` or :meth:`acquire`.

    Parameters
    ----------
    folder : Path
        The point's folder; the lock is ``folder/lock``.
    heartbeat : float
        Seconds between touches while held.
    """
    folder: Path
    heartbeat: float = HEARTBEAT_S
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _token: str = field(default="", repr=False)

    @property
    def path(self) -> Path:
        return Path(self.folder) / "lock"

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        self._token = f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"
        owner = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time(),
                 "token": self._token}
        with os.fdopen(fd, "w") as f:
            json.dump(owner, f)
            f.flush()
            os.fsync(f.fileno())
        return True

    def _break_stale(self, owner: dict | None) -> None:
        """Remove the lock if it is still the stale one that ``owner`` describes."""
        guard = self.path.with_name("lock.break")
        try:
            fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                if time.time() - guard.stat().st_mtime > _BREAK_STALE_S:
                    guard.unlink(missing_ok=True)
            except FileNotFoundError:
                pass
            return
        os.close(fd)
        try:
            now = lock_owner(self.path)
            if now == owner and is_stale(self.path, now):
                self.path.unlink(missing_ok=True)
        finally:
            guard.unlink(missing_ok=True)

    def try_acquire(self) -> bool:
        """Take the lock if it is free or stale; False while a live owner holds it."""
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if self._create():
                self._start_heartbeat()
                return True
            owner = lock_owner(self.path)
            if not is_stale(self.path, owner):
                return False
            self._break_stale(owner)
        return False

    def acquire(self, *, wait: bool = False, poll: float = 1.0) -> None:
        """Take the lock; with ``wait``, until the live owner lets go (or dies).

        Raises
        ------
        LockHeld
            Without ``wait``, when a live owner holds it.
        """
        while not self.try_acquire():
            if not wait:
                raise LockHeld(self.path, lock_owner(self.path) or {})
            time.sleep(poll)

    def _start_heartbeat(self) -> None:
        self._stop.clear()

        def beat() -> None:
            while not self._stop.wait(self.heartbeat):
                try:
                    os.utime(self.path)
                except FileNotFoundError:
                    return

        self._thread = threading.Thread(target=beat, name="sweep-lock-heartbeat", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Stop the heartbeat and remove the lock if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        owner = lock_owner(self.path)
        if owner and owner.get("token") == self._token:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "PointLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

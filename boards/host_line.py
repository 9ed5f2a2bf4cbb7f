"""The host's end of a board's serial line, shared by the drivers of ``fewmul run``.

:func:`open_board` finds the board folder of a build and reads its ``link.json``;
:class:`SerialLine` reads the board's frames (skipping line noise up to their sync byte) and
streams request frames with at most a window of them unanswered. The inference driver
(:mod:`fewmul.boards.host`) and the training driver (:mod:`fewmul.boards.train_host`) both
speak through them to any object with pyserial's ``write(bytes)`` and ``read(n)`` (returning
fewer bytes on a timeout), a real port or a stand-in.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .protocol import ProtocolError

__all__ = ["HostLinkError", "find_board_dir", "open_board", "SerialLine"]


class HostLinkError(RuntimeError):
    """The board did not answer as the protocol says."""


def find_board_dir(build_dir: Path, board: str | None) -> Path:
    """``BUILD/<board>/``; with ``board`` None, the only board folder ``fewmul build`` wrote."""
    build_dir = Path(build_dir)
    if board is not None:
        path = build_dir / board
        if not (path / "link.json").exists():
            raise FileNotFoundError(f"{path / 'link.json'} is missing: run "
                                    f"'fewmul build {build_dir} --board {board}' first")
        return path
    found = sorted(p.parent for p in build_dir.glob("*/link.json"))
    if len(found) != 1:
        raise FileNotFoundError(
            f"{build_dir}: " + ("no board build found: run 'fewmul build' first" if not found
                                else f"several board builds ({', '.join(p.name for p in found)}); "
                                     f"choose one with --board"))
    return found[0]


def open_board(build_dir: Path, board: str | None, load: Callable[[Path], object]):
    """The board folder of ``build_dir`` (:func:`find_board_dir`) and its link description.

    Parameters
    ----------
    build_dir : Path
        The build folder that ``fewmul build`` wrote the board folder into.
    board : str or None
        The board folder's name; None for the only one.
    load : callable
        Reads ``link.json``: :meth:`LinkFormat.load <fewmul.boards.protocol.LinkFormat.load>`
        or :meth:`TrainLinkFormat.load <fewmul.boards.train_protocol.TrainLinkFormat.load>`.

    Returns
    -------
    (Path, object)
        The board folder and ``load(board_dir / "link.json")``.
    """
    board_dir = find_board_dir(build_dir, board)
    return board_dir, load(board_dir / "link.json")


class SerialLine:
    """A board's serial port, read frame by frame.

    Parameters
    ----------
    port
        With ``write(bytes)`` and ``read(n)``.
    timeout : float
        Seconds to wait for each answer.
    bitstream : str
        What the errors ask to check is loaded ("bitstream", "training bitstream").
    track : bool
        Name in the errors what was received last (``last``, "nothing yet" at first).
    """

    def __init__(self, port, timeout: float, *, bitstream: str = "bitstream",
                 track: bool = False):
        self.port, self.timeout, self.bitstream = port, timeout, bitstream
        self.last: str | None = "nothing yet" if track else None

    def _advice(self, advice: str) -> str:
        """``advice`` after an error's first part, with what was received last if tracked."""
        if self.last is None:
            return f": {advice}"
        return f"; last received: {self.last}. {advice[0].upper()}{advice[1:]}"

    def read_frame(self, sync: int, size: int, missing: str, what: str,
                   timeout: float | None = None) -> bytes:
        """Skip to ``sync``, then read the rest of the frame's ``size`` bytes.

        Parameters
        ----------
        sync, size : int
            The frame's first byte and its length, that byte included.
        missing : str
            The error when no sync byte comes, before "within ... s".
        what : str
            The frame in the error when it stops short ("the answer to ...").
        timeout : float or None
            Seconds for the whole frame (None: the line's ``timeout``).

        Returns
        -------
        bytes
            The frame, its sync byte first.
        """
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        skipped = 0
        while True:                                   # find the sync byte; skip line noise
            byte = self.port.read(1)
            if byte and byte[0] == sync:
                break
            skipped += len(byte)
            if time.monotonic() > deadline:
                raise HostLinkError(
                    f"{missing} within {timeout:g} s"
                    + (f" ({skipped} stray bytes)" if skipped else "")
                    + self._advice(f"check the port, the baud rate and that the {self.bitstream} "
                                   f"is loaded"))
        body = b""
        while len(body) < size - 1:
            chunk = self.port.read(size - 1 - len(body))
            body += chunk
            if not chunk and time.monotonic() > deadline:
                raise HostLinkError(
                    f"{what} stopped after {1 + len(body)} of {size} bytes"
                    + ("" if self.last is None else f"; last received: {self.last}"))
        return bytes([sync]) + body

    def stream(self, frames: Sequence[bytes], window: int, sync: int, size: int,
               decode: Callable[[bytes, int], object], answers: list, *, what: str,
               about: str = "to", desc: str | None = None, unit: str = "frame",
               progress: bool = False) -> list:
        """Send ``frames``, at most ``window`` unanswered (a window's frames in one write), and
        append each answer, a frame of ``size`` bytes from ``sync`` decoded by
        ``decode(frame, index)``, to ``answers``.

        The errors name a frame ``about`` ``what`` and its index: "no answer from the board to
        training sample 3", "the answer to training sample 3". The answers received before a
        :class:`HostLinkError` stay in ``answers``. ``desc`` (``what`` when None) and ``unit``
        label the progress bar (with ``progress``).
        """
        from tqdm import tqdm

        bar = tqdm(total=len(frames), desc=desc or what, unit=unit, disable=not progress,
                   leave=False)
        try:
            start, total, sent = len(answers), len(frames), 0
            while len(answers) - start < total:
                batch = []
                while sent < total and sent - (len(answers) - start) < window:
                    batch.append(frames[sent])
                    sent += 1
                if batch:
                    self.port.write(b"".join(batch))
                index = len(answers) - start
                label = f"{about} {what} {index}"
                frame = self.read_frame(sync, size, f"no answer from the board {label}",
                                        f"the answer {label}")
                try:
                    value = decode(frame, index)
                except ProtocolError as exc:
                    raise HostLinkError(f"the answer {label} is garbled ({exc})"
                                        + self._advice("check the baud rate")) from None
                answers.append(value)
                if self.last is not None:
                    self.last = f"the answer {label}"
                bar.update()
        finally:
            bar.close()
        return answers

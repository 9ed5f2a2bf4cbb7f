"""The boards' Amaranth platforms, with the clock constraint place and route aims for.

Each board's amaranth-boards platform is subclassed with :class:`AimedClocks`: its clock
constraints (the files given to nextpnr or Vivado) are raised to :attr:`AimedClocks.target_hz`
when that is higher, while the design itself (the UART's divisor, the reset delay) keeps the
board's clock, :attr:`default_clk_frequency`.

Place and route works towards its constraints: with only the board's 25 MHz it stops improving
a path once it meets 40 ns, so the project's goal for the device is given as the constraint.
"""

from __future__ import annotations

from collections.abc import Iterator

from amaranth.build import Platform
from amaranth_boards.arty_a7 import ArtyA7_35Platform as _ArtyA7_35Platform
from amaranth_boards.icebreaker import ICEBreakerPlatform as _ICEBreakerPlatform
from amaranth_boards.ulx3s import ULX3S_85F_Platform as _ULX3S_85F_Platform

__all__ = ["AimedClocks", "ICEBreakerPlatform", "ULX3S_85F_Platform", "ArtyA7_35Platform",
           "aim_clocks"]


class AimedClocks:
    """Mixin for an :class:`amaranth.build.Platform`: clock constraints of at least ``target_hz``.

    Parameters
    ----------
    target_hz : float or None
        Clock frequency place and route aims for; a clock whose own frequency is higher keeps
        its own. None (or 0) keeps the board's constraints.
    *args, **kwargs
        For the platform.

    Attributes
    ----------
    target_hz : float or None
    """

    def __init__(self, *args, target_hz: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.target_hz = target_hz

    @property
    def target_hz(self) -> float | None:
        return self._target_hz

    @target_hz.setter
    def target_hz(self, hz: float | None) -> None:
        if hz is not None and (not isinstance(hz, (int, float)) or isinstance(hz, bool)
                               or hz < 0):
            raise TypeError(f"Target frequency must be a non-negative number or None, "
                            f"not {hz!r}")
        self._target_hz = None if hz is None else float(hz)

    def _aimed(self, frequency: float) -> float:
        return max(frequency, self._target_hz) if self._target_hz else frequency

    def iter_port_clock_constraints(self) -> Iterator[tuple[object, float]]:
        for port, frequency in super().iter_port_clock_constraints():
            yield port, self._aimed(frequency)

    def iter_signal_clock_constraints(self) -> Iterator[tuple[object, float]]:
        for signal, frequency in super().iter_signal_clock_constraints():
            yield signal, self._aimed(frequency)


class ICEBreakerPlatform(AimedClocks, _ICEBreakerPlatform):
    """The iCEBreaker (iCE40UP5K, 12 MHz clock), aiming at ``target_hz``."""


class ULX3S_85F_Platform(AimedClocks, _ULX3S_85F_Platform):
    """The ULX3S with an ECP5 LFE5U-85F (25 MHz clock), aiming at ``target_hz``."""


class ArtyA7_35Platform(AimedClocks, _ArtyA7_35Platform):
    """The Arty A7-35 (XC7A35T, 100 MHz clock) for Vivado, aiming at ``target_hz``."""

    def __init__(self, *, toolchain: str = "Vivado", target_hz: float | None = None):
        super().__init__(toolchain=toolchain, target_hz=target_hz)


def aim_clocks(platform: Platform, hz: float | None) -> None:
    """Give place and route the timing constraint ``hz`` for every clock of ``platform`` (or the
    clock's own frequency if higher): sets :attr:`AimedClocks.target_hz`.

    Raises
    ------
    TypeError
        If ``platform`` is not an :class:`AimedClocks` platform.
    """
    if not isinstance(platform, AimedClocks):
        raise TypeError(f"Platform must be an AimedClocks platform (see "
                        f"fewmul.boards.platforms), not {platform!r}")
    platform.target_hz = hz

"""What flows on the edges of the network IR: typed integer tensors."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ELEMENT_KINDS", "TensorType"]

#: ``bipolar``: bits meaning -1/+1; ``unsigned``: ``bits``-bit levels (pixels, k-bit
#: activations); ``signed``: two's-complement sums and scores; ``index``: a class label.
ELEMENT_KINDS = ("bipolar", "unsigned", "signed", "index")


@dataclass(frozen=True)
class TensorType:
    """A ``(channels, height, width)`` tensor of integers of one kind, per image.

    A fully-connected layer's vector of ``N`` values is ``(N, 1, 1)``. Flattened (the NumPy
    arrays of the golden model, the order of the streams), an image is in ``(H, W, C)`` order:
    a pixel's channels are adjacent, pixels follow row by row.

    Parameters
    ----------
    shape : tuple of int
        ``(channels, height, width)``.
    kind : str
        See :data:`ELEMENT_KINDS`.
    bits : int
        Bits per element.
    bound : int, optional
        For ``signed`` elements: ``|x| <= bound`` (sums, whose range the hardware's widths are
        proved for).
    """
    shape: tuple[int, int, int]
    kind: str
    bits: int
    bound: int | None = None

    def __post_init__(self):
        if (len(self.shape) != 3 or
                any(not isinstance(d, int) or isinstance(d, bool) or d <= 0 for d in self.shape)):
            raise ValueError(f"Shape must be three positive integers (C, H, W), not "
                             f"{self.shape!r}")
        if self.kind not in ELEMENT_KINDS:
            raise ValueError(f"Element kind must be one of {ELEMENT_KINDS!r}, not {self.kind!r}")
        if not isinstance(self.bits, int) or self.bits <= 0:
            raise ValueError(f"Bits must be a positive integer, not {self.bits!r}")

    @classmethod
    def vector(cls, n: int, kind: str, bits: int, bound: int | None = None) -> "TensorType":
        """A flat vector of ``n`` elements."""
        return cls((int(n), 1, 1), kind, int(bits), None if bound is None else int(bound))

    @property
    def channels(self) -> int:
        return self.shape[0]

    @property
    def pixels(self) -> int:
        """``H * W``."""
        return self.shape[1] * self.shape[2]

    @property
    def size(self) -> int:
        """Elements per image."""
        c, h, w = self.shape
        return c * h * w

    def __str__(self) -> str:
        c, h, w = self.shape
        dims = f"{c}" if (h, w) == (1, 1) else f"{c}x{h}x{w}"
        return f"{dims} {self.kind} {self.bits}-bit"

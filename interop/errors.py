"""The one error of the interop package: a model fewmul does not import or export exactly."""

from __future__ import annotations

__all__ = ["Unsupported", "SUPPORTED"]

#: What the importer maps, for error messages (docs/qonnx.md lists the same).
SUPPORTED = ("MatMul/Gemm/Conv with BipolarQuant, 1-bit or 2-bit narrow Quant (or +-a / -a,0,+a) "
             "weights; BatchNormalization, Mul, Div, Add, Sub by constants; BipolarQuant, Quant, "
             "MultiThreshold, Sign, Relu + quantizer activations; Flatten, Reshape, Pad, MaxPool, "
             "Identity, Dropout")


class Unsupported(ValueError):
    """A node (or the model) that fewmul cannot represent exactly.

    Parameters
    ----------
    where : str
        The node (``"node 'Conv_0' (Conv)"``) or the part of the model concerned.
    reason : str
        Why, in one sentence.
    supported : str, optional
        What fewmul does support instead; by default nothing more is said.
    """

    def __init__(self, where: str, reason: str, supported: str | None = None):
        text = f"{where}: {reason}"
        if supported:
            text += f"; fewmul supports {supported}"
        super().__init__(text)


def node_text(node) -> str:
    """``node 'Conv_0' (Conv)`` for an ONNX node."""
    return f"node {node.name or node.output[0]!r} ({node.op_type})"

"""fewmul.ir: the network IR, a graph of typed ops with shapes, an exact NumPy forward and a hardware binding."""

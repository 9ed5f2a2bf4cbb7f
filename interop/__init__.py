"""Interoperation with the quantized-network ecosystem: QONNX in and out.

:mod:`.qonnx_import` maps a QONNX model (Brevitas, FINN, QKeras exports) onto a run folder
whose network is exact (:mod:`.patterns`, one function per node pattern, on the exact values of
:mod:`.values`); :mod:`.export` writes a run's network as QONNX; :mod:`.check` compares
qonnx's execution of a model with fewmul's golden model. The package sits between the compiler
and the command line.
"""

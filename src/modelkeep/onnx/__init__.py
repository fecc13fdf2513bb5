"""ONNX: portable artifacts with a measured parity report, served by onnxruntime.

- :mod:`~modelkeep.onnx.export`: convert a fitted model, trying the strategies of
  :mod:`~modelkeep.onnx.strategies` until one passes :mod:`~modelkeep.onnx.parity`;
- :mod:`~modelkeep.onnx.report`: the parity report as manifest data;
- :mod:`~modelkeep.onnx.inputs`, :mod:`~modelkeep.onnx.runtime`, :mod:`~modelkeep.onnx.model`:
  the serving path, numpy and onnxruntime only.

Nothing heavy is imported here: conversion needs the ``[onnx]`` extra, serving the
``[onnx-runtime]`` extra, each imported where used.
"""

from __future__ import annotations

from modelkeep.onnx.report import ParityReport, ParityThresholds
from modelkeep.onnx.runtime import SessionOptions

__all__ = ["ParityReport", "ParityThresholds", "SessionOptions"]

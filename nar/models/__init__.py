"""Encoders, processors and decoders, and the encode-process-decode model.

Build a model from one or more algorithm specs and a config::

    from nar.algorithms import ALGORITHMS
    from nar.models import EncodeProcessDecode, ModelConfig, ProcessorConfig

    config = ModelConfig(processor=ProcessorConfig(kind="triplet_gmpnn", hidden=128))
    model = EncodeProcessDecode([ALGORITHMS["bellman_ford"].spec], config)
    pred = model(batch)          # batch: nar.data.batching.Batch -> Prediction (logits)

``model.processor`` (with ``config.processor``) is what gets frozen and transferred.
"""

from nar.models.decoders import SpecDecoder, postprocess, prediction
from nar.models.encoders import SpecEncoder, to_features
from nar.models.layers import EdgeFeatures
from nar.models.model import EncodeProcessDecode, ModelConfig, Prediction, message_adjacency
from nar.models.processors import PROCESSORS, Processor, ProcessorConfig, ProcessorOutput, build_processor

__all__ = [
    "PROCESSORS",
    "EdgeFeatures",
    "EncodeProcessDecode",
    "ModelConfig",
    "Prediction",
    "Processor",
    "ProcessorConfig",
    "ProcessorOutput",
    "SpecDecoder",
    "SpecEncoder",
    "build_processor",
    "message_adjacency",
    "postprocess",
    "prediction",
    "to_features",
]

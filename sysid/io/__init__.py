"""Model files: tensors in safetensors, everything else in a JSON header, checksummed. No pickle.

A ``.sysid`` file is a safetensors file. Its metadata holds one JSON document with the
format version, the package version, the estimator's class and constructor
parameters, and its fitted state (names, scaling, history...), and checksums of the
header and of the tensors. Loading reads the tensors with safetensors and the header with
:mod:`json`: a file can hold no code, so loading a hostile file cannot run any, and a
file whose parameters disagree with its tensors is refused before anything is built.

Estimators whose parameters include the user's own Python functions (e.g. a grey-box
right-hand side) store the function's name only; pass the function again to
:func:`load` by parameter name.

:mod:`sysid.io.format` is the file format itself (it knows nothing of estimators; the
training checkpoints use it too); this package adds the estimators (:func:`save`,
:func:`load`), found by name in :mod:`sysid.registry`.
"""

from sysid.io._estimators import decode_params as decode_params
from sysid.io._estimators import encode_params as encode_params
from sysid.io._estimators import load as load
from sysid.io._estimators import read_header as read_header
from sysid.io._estimators import save as save
from sysid.io.format import CHECKPOINT_FORMAT as CHECKPOINT_FORMAT
from sysid.io.format import FORMAT_VERSION as FORMAT_VERSION
from sysid.io.format import MODEL_FORMAT as MODEL_FORMAT

__all__ = [
    "CHECKPOINT_FORMAT",
    "FORMAT_VERSION",
    "MODEL_FORMAT",
    "decode_params",
    "encode_params",
    "load",
    "read_header",
    "save",
]

"""Errors a user can cause. All are ValueError subclasses, so `except ValueError` catches them.

Each message names what was wrong (the argument, the field or the tensor) and what was expected.
"""


class MinibertError(ValueError):
    """Base class of every error minibert raises for bad input, configs or files."""


class InputError(MinibertError):
    """Model inputs that cannot be run: wrong dtype, shape, ids outside the vocabulary, too long."""


class ConfigError(MinibertError):
    """A config.json value that is missing, malformed or contradicts the weights."""


class CheckpointError(MinibertError):
    """A checkpoint file that is missing, malformed, unsafe, or does not fit the config."""


class DeviceError(MinibertError):
    """A device that cannot be used: a name other than "cpu" or "cuda", or "cuda" where cupy or
    a CUDA device is missing."""


class LoadWarning(UserWarning):
    """A checkpoint loaded, but with tensors that were not used (listed in the message)."""

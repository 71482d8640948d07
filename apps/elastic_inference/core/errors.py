"""Every exception the project raises on purpose, in one place, so callers catch by meaning."""


class EIError(Exception):
    """Base of all Elastic Inference errors."""


class ConfigError(EIError):
    """A setting is unknown or invalid; the message names the variable or flag."""


class InvalidMessage(EIError):
    """A frame or result message failed validation; it is dropped with reason ``invalid``."""


class SubscribeError(EIError, ValueError):
    """A client's live-websocket control message is malformed; the text goes back to it as
    ``{"error": ...}``."""


class ModelError(EIError):
    """A model is unknown, missing on disk, or does not match its post-processor."""


class TruthError(EIError):
    """A truth (checked annotation) file cannot be read or does not fit the video; the message
    names the file and the place in it."""


class FetchError(EIError):
    """Model or sample download failed, or a checksum did not match."""


class SourceError(EIError):
    """A video source could not be opened or stopped producing frames."""


class StorageFull(EIError):
    """Redis already holds as much of something as it may; retry once some is deleted."""


class AuthError(EIError):
    """A user or token name, role or password is invalid, or a user or token to change does
    not exist (or already does); the message says which and never holds a secret."""

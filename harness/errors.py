"""Errors the command line reports as one line (exit code 2) instead of a traceback."""


class HarnessError(Exception):
    """Bad input or usage: the message says what was wrong and what to do about it."""


class DataError(HarnessError):
    """A data set on disk is missing, incomplete or not in the expected format."""


class CheckpointError(HarnessError):
    """A checkpoint or weights file is missing, unreadable or does not fit the model."""


class DownloadError(HarnessError):
    """A download failed, was interrupted or did not match its published checksum."""

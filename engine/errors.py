"""Errors a user can act on.

Every problem caused by input from the user (a folder, a file, a flag, a device name) is raised as a
subclass of :class:`UserError`. Front ends show its message as is: the CLI prints it on one line and
exits with status 2, the GUI shows it in a dialog. Anything else is a bug and is reported as such.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input; the message names the thing and the problem."""


class AlreadyReported(UserError):
    """A failure that another process of the same run reports (torchrun): this one exits without a word."""


class DataError(UserError):
    """A data set folder or IDX file that cannot be used."""


class DownloadError(DataError):
    """A download that failed (offline, every mirror failed, checksum mismatch)."""


class DownloadCancelled(DataError):
    """The user cancelled a download."""


class CheckpointError(UserError):
    """A checkpoint that cannot be saved, loaded or used."""


class DeviceError(UserError):
    """A device that does not exist or cannot be used."""


class ConfigError(UserError):
    """A training configuration value that is out of range or unknown."""


class TrainingError(UserError):
    """Training that cannot continue, e.g. because the loss became NaN."""


class ImageError(UserError):
    """An image file that cannot be read."""

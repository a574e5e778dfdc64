"""Errors a user can fix.

A `UserError` reaches the command line as one message and exit code 2, with no
traceback (`--traceback` shows it). Raise it for anything the user typed, configured or
installed wrongly; let programming errors propagate as ordinary exceptions.
"""


class UserError(Exception):
  """Something the user can fix: say what was wrong, where, and how to fix it."""


class ConfigError(UserError):
  """A problem in a .gin file, a binding or a plugin."""


class StorageError(UserError):
  """A write to the logdir failed (disk full, no permission, an I/O error): what was
  stored before is complete, and the message says what could not be written."""

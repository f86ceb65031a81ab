"""The one exception type for mistakes a user can make (bad input, missing files).

It is a ``click.ClickException`` so the CLI prints ``Error: <message>`` and exits
non-zero without a traceback; library callers can catch it like any exception.
Internal bugs stay ordinary exceptions with tracebacks.
"""

import click


class HmxError(click.ClickException):
    """A user-facing error: the message names the problem and the fix."""

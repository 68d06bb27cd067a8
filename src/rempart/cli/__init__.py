"""The ``rempart`` command: one typer app, each room of the house a sub-command.

Errors are handled in one place, :func:`main`: a :class:`~rempart.errors.RempartError`
prints one clear line (and its facts) and exits non-zero; nothing prints a trace.
"""

from __future__ import annotations

import sys

import typer

from rempart.cli import access as _access  # noqa: F401  (attaches `rempart access …`)
from rempart.cli import audit as _audit  # noqa: F401  (attaches `rempart audit …`)
from rempart.cli import demo as _demo  # noqa: F401  (attaches `rempart demo`)
from rempart.cli import governance as _governance  # noqa: F401  (attaches `rempart trust-root|proposal …`)
from rempart.cli import keys as _keys  # noqa: F401  (attaches `rempart keys …`)
from rempart.cli import log as _log  # noqa: F401  (attaches `rempart log …`)
from rempart.cli import migrate as _migrate  # noqa: F401  (attaches `rempart migrate …`)
from rempart.cli import principals as _principals  # noqa: F401  (attaches `rempart principals|tokens …`)
from rempart.cli import records as _records  # noqa: F401  (attaches `rempart subjects|records|erase|egress`)
from rempart.cli import release as _release  # noqa: F401  (attaches `rempart release …`)
from rempart.cli import server as _server  # noqa: F401  (attaches `rempart init|serve`)
from rempart.cli import witness as _witness  # noqa: F401  (attaches `rempart witness …`)
from rempart.cli._app import app, console_err
from rempart.errors import InvalidInput, RempartError, VerificationFailed

__all__ = ["app", "main"]

# Exit codes: 1 verification failed / violation found, 2 bad input, 3 anything else Rempart refused.
EXIT_VERIFICATION = 1
EXIT_INPUT = 2
EXIT_OTHER = 3


def main() -> None:
    try:
        code = app(standalone_mode=False)  # returns, rather than raises, a typer.Exit's code
    except RempartError as exc:
        console_err.print(f"[bold red]error[/] ({exc.code}): {exc.message}", highlight=False, soft_wrap=True)
        for key, value in exc.details.items():
            console_err.print(f"  {key}: {value}", highlight=False, soft_wrap=True)
        if isinstance(exc, VerificationFailed):
            sys.exit(EXIT_VERIFICATION)
        sys.exit(EXIT_INPUT if isinstance(exc, InvalidInput) else EXIT_OTHER)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        console_err.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        console_err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    if isinstance(code, int) and code:
        sys.exit(code)

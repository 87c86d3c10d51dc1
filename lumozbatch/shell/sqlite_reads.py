"""``Cause`` moved to :mod:`lumozbatch.shell.sql_reads`; kept here for
:mod:`lumozbatch.shell.state_reads`, which imports it from this module."""

from lumozbatch.shell.sql_reads import Cause

__all__ = ["Cause"]
